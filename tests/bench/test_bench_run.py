"""``python -m bench`` end to end at a size any machine runs in seconds: its own broker (with the delayed
listener), the delay proxy, the bare producers and the gateway, the JSON a user's comparisons read.

The figures belong to ``make bench``; this holds the wiring: the stable top-level keys are numbers, the
slow-broker phase really ran with its own fleet size behind the injected latency (its acks take at least
the delay), and every reading of both fleets was acked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_its_report_with_both_phases(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--devices", "300", "--readings", "20", "--latency-devices", "500"]
    cmd += ["--send-readings", "2000", "--delay-ms", "100", "--paced-seconds", "0", "--fast-level", "-1"]
    cmd += ["--no-peers", "--no-simulator", "--out", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    (path,) = tmp_path.glob("bench-*.json")
    report = json.loads(path.read_text())
    for key in ("gateway_readings_per_s", "bare_producer_readings_per_s", "ratio"):
        assert isinstance(report[key], int | float) and report[key] > 0, (key, report[key])
    fast, slow = report["no_latency"]["gateway"], report["latency_100ms"]["gateway"]
    assert (fast["devices"], slow["devices"]) == (300, 500)
    assert (fast["fully_acked_devices"], slow["fully_acked_devices"]) == (300, 500)
    assert (fast["readings"], slow["readings"]) == (6000, 10000)
    assert slow["ack_latency_ms"]["p50"] >= 100, slow["ack_latency_ms"]
    assert report["latency_100ms"]["bare_batch"]["failed"] == 0
    assert "of its no-latency figure (500 devices against 300" in done.stdout
