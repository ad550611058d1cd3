"""dashboards/annotate.py posts a bundle's phase markers to Grafana's annotation API.

No Grafana can run on the build machines (its packages come from its own repository), so a small
local HTTP server stands in for Grafana's POST /api/annotations and records what it receives.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.monitoring import queries

SCRIPT = queries.ROOT / "dashboards" / "annotate.py"


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, dict]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"message":"Annotation added"}' if self.status == 200 else b'{"message":"nope"}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def grafana_stand_in():
    _Recorder.received = []
    _Recorder.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def _bundle(tmp_path: Path, markers: dict) -> Path:
    (tmp_path / "phases.json").write_text(
        json.dumps({"run_id": "r-42", "unit": "unix seconds", "markers": markers})
    )
    (tmp_path / "pw").write_text("s3cret-password\n")
    return tmp_path


def test_markers_become_tagged_annotations(tmp_path: Path, grafana_stand_in) -> None:
    bundle = _bundle(
        tmp_path, {"outage_start": 1000.5, "flush_start": 1010.25, "drained": 1012.0, "recovered": None}
    )
    url = f"http://127.0.0.1:{grafana_stand_in.server_port}"
    result = _run(str(bundle), "--grafana", url, "--password-file", str(tmp_path / "pw"))
    assert result.returncode == 0, result.stderr
    assert "3 markers of run r-42" in result.stdout
    got = _Recorder.received
    assert [r[0] for r in got] == ["/api/annotations"] * 3
    assert got[0][1] == "Basic " + base64.b64encode(b"admin:s3cret-password").decode()
    assert [(r[2]["time"], r[2]["tags"]) for r in got] == [
        (1000500, ["iot-burst", "run:r-42", "outage_start"]),
        (1010250, ["iot-burst", "run:r-42", "flush_start"]),
        (1012000, ["iot-burst", "run:r-42", "drained"]),
    ]


def test_every_dashboard_shows_the_markers_tag() -> None:
    for uid, dash in queries.dashboards().items():
        tags = [a["target"]["tags"] for a in dash["annotations"]["list"] if a.get("name") == "Run markers"]
        assert tags == [["iot-burst"]], uid


def test_grafana_refusal_names_the_marker(tmp_path: Path, grafana_stand_in) -> None:
    _Recorder.status = 401
    bundle = _bundle(tmp_path, {"outage_start": 1.0})
    url = f"http://127.0.0.1:{grafana_stand_in.server_port}"
    result = _run(str(bundle / "phases.json"), "--grafana", url, "--password-file", str(tmp_path / "pw"))
    assert result.returncode == 2
    assert "Grafana refused marker 'outage_start': HTTP 401" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"markers": {}}', "expected {'run_id'"),
        ('{"run_id": "x", "markers": {"drained": "soon"}}', "marker 'drained' is 'soon'"),
    ],
)
def test_bad_phases_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "phases.json").write_text(content)
    (tmp_path / "pw").write_text("x")
    result = _run(str(tmp_path), "--grafana", "http://127.0.0.1:9", "--password-file", str(tmp_path / "pw"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
