"""Write the Grafana dashboards (dashboards/json/*.json) from dashboards/panels.py.

    python dashboards/build.py            # (re)write the JSON files
    python dashboards/build.py --check    # exit 1 naming each JSON file that is stale

The JSON files are committed (Grafana and the monitoring role read them); a test runs ``--check``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from grafana import render  # noqa: E402
from panels import ALL  # noqa: E402

OUT = HERE / "json"


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{d.uid}.json": json.dumps(render(d), indent=2, sort_keys=False) + "\n" for d in ALL}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = OUT / name
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(name)
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"stale dashboards (run `python dashboards/build.py`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
