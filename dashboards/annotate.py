"""Post a run's phase markers (the results bundle's phases.json) to Grafana as annotations.

    python dashboards/annotate.py --grafana http://mon1:3000 --password-file F reports/<run>/phases.json

Each marker with a time (outage_start, flush_start, drained, recovered, ...) becomes one organisation
annotation tagged ``iot-burst``, ``run:<run id>`` and the marker name; every pilot dashboard shows the
``iot-burst`` tag as its "Run markers" annotation. The live phase regions come from Prometheus
(``iot_run_phase_info``); these are the markers only the end of a run knows (drained, recovered).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

TAG = "iot-burst"


class AnnotateError(RuntimeError):
    """phases.json is unusable or Grafana refused an annotation; the message says which."""


@dataclass(frozen=True)
class Marker:
    event: str
    time_ms: int


def read_markers(path: Path) -> tuple[str, list[Marker]]:
    """(run id, markers with a time) from a phases.json file or a bundle directory holding one."""
    if path.is_dir():
        path = path / "phases.json"
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise AnnotateError(f"cannot read {path}: {err.strerror}") from None
    except ValueError as err:
        raise AnnotateError(f"{path} is not JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("markers"), dict) or "run_id" not in data:
        raise AnnotateError(f"{path}: expected {{'run_id': ..., 'markers': {{event: unix seconds}}}}")
    if data.get("unit", "unix seconds") != "unix seconds":
        raise AnnotateError(f"{path}: markers must be in unix seconds, not {data['unit']!r}")
    markers = []
    for event, ts in data["markers"].items():
        if ts is None:
            continue
        if isinstance(ts, bool) or not isinstance(ts, int | float):
            raise AnnotateError(f"{path}: marker {event!r} is {ts!r}, not a number of seconds")
        markers.append(Marker(str(event), round(ts * 1000)))
    return str(data["run_id"]), sorted(markers, key=lambda m: m.time_ms)


def post_markers(grafana: str, user: str, password: str, run_id: str, markers: list[Marker]) -> int:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    for marker in markers:
        body = {
            "time": marker.time_ms,
            "tags": [TAG, f"run:{run_id}", marker.event],
            "text": f"{marker.event} (run {run_id})",
        }
        request = urllib.request.Request(
            f"{grafana.rstrip('/')}/api/annotations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Basic {auth}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):
                pass
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise AnnotateError(
                f"Grafana refused marker {marker.event!r}: HTTP {err.code} {detail}"
            ) from None
        except urllib.error.URLError as err:
            raise AnnotateError(f"cannot reach Grafana at {grafana}: {err.reason}") from None
    return len(markers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phases", type=Path, help="phases.json of a results bundle (or the bundle directory)")
    parser.add_argument("--grafana", required=True, help="Grafana base URL, e.g. http://mon1:3000")
    parser.add_argument("--user", default="admin", help="Grafana user (default admin)")
    parser.add_argument("--password-file", type=Path, required=True, help="file holding that user's password")
    args = parser.parse_args(argv)
    try:
        password = args.password_file.read_text().strip()
        if not password:
            raise AnnotateError(f"{args.password_file} is empty")
        run_id, markers = read_markers(args.phases)
        count = post_markers(args.grafana, args.user, password, run_id, markers)
    except OSError as err:
        print(f"annotate: cannot read {args.password_file}: {err.strerror}", file=sys.stderr)
        return 2
    except AnnotateError as err:
        print(f"annotate: {err}", file=sys.stderr)
        return 2
    print(f"annotate: {count} markers of run {run_id} posted to {args.grafana}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
