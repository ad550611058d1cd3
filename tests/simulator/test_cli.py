"""The pilot's CLI against a real gateway (offline / online / status / quit), and `make demo`'s
promise to stop everything it started when it is interrupted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent.parent


def test_pilot_cli_offline_online_status_quit(
    kafka_broker, fresh_topic, gateway_factory, tmp_path: Path
) -> None:
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    cmd = [sys.executable, "-m", "simulator", "--devices", "100", "--duration", "60"]
    cmd += ["--host", "127.0.0.1", "--port", str(gw.udp_port), "--registry", str(gw.registry_path)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
    )
    assert proc.stdin is not None
    try:
        for command, pause in (
            ("", 2.0),
            ("offline", 3.0),
            ("status", 0.5),
            ("online", 4.0),
            ("status", 0.5),
        ):
            if command:
                proc.stdin.write(command + "\n")
                proc.stdin.flush()
            time.sleep(pause)
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "network DOWN" in out and "network UP" in out and "generated" in out
    m = re.search(r"run \S+: generated (\d+) acked (\d+) buffered (\d+)", out)
    assert m, out
    generated, acked, buffered = map(int, m.groups())
    # the ~300 readings of the 3 s outage were flushed; at most the newest reading per device is in flight
    assert generated >= 800 and buffered <= 100, m.group(0)
    assert acked == generated - buffered, m.group(0)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.slow
def test_demo_stops_broker_and_gateway_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, SIM_REPORTS=str(tmp_path / "reports"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "demo",
            "--scenario",
            "scenarios/smoke.yml",
            "--gateway-workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("demo: run "):
                break
        assert any(line.startswith("demo: run ") for line in lines), "".join(lines)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 130, out
    assert "interrupted" in out and "gateway and broker stopped" in out
    broker_port = int(next(x for x in lines if "broker on" in x).split("127.0.0.1:")[1].split(";")[0])
    http_port = int(next(x for x in lines if "metrics http" in x).split("127.0.0.1:")[1].split("/")[0])
    assert _refused(broker_port) and _refused(http_port), "broker or gateway still listening after the demo"
