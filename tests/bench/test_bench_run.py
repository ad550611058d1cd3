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

from bench.e2e import bucket_quantile
from gateway.metrics import LATENCY_BUCKETS_MS

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def test_bench_writes_its_report_with_both_phases(tmp_path):
    cmd = [sys.executable, "-m", "bench", "--devices", "300", "--readings", "20", "--latency-devices", "500"]
    cmd += ["--send-readings", "2000", "--delay-ms", "100", "--paced-seconds", "1", "--fast-level", "-1"]
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
    # the slow phase's devices send as many readings each as the fast phase's (--latency-readings 0)
    assert (fast["readings"], slow["readings"]) == (300 * 20, 500 * 20)
    assert slow["ack_latency_ms"]["p50"] >= 100, slow["ack_latency_ms"]
    assert report["latency_100ms"]["bare_batch"]["failed"] == 0
    assert "of its no-latency figure (500 devices against 300" in done.stdout
    half = fast["half_load"]  # the paced run at half the rate, with the gateway's own tail next to it
    assert half["fully_acked_devices"] == 300
    for key in ("produce_ms_p99_bucket", "gateway_ack_ms_p99_bucket"):
        assert half[key] in LATENCY_BUCKETS_MS, (key, half[key])
    assert "Kafka produce <=" in done.stdout


def test_bucket_quantile_reads_the_window_between_two_scrapes():
    before = {10.0: 5, 50.0: 5, 100.0: 5, float("inf"): 5}  # 5 observations before the window, all <= 10
    after = {
        10.0: 55,
        50.0: 104,
        100.0: 105,
        float("inf"): 105,
    }  # then 50 <= 10, 49 in (10, 50], 1 in (50, 100]
    assert bucket_quantile(before, after, 0.50) == 10.0
    assert bucket_quantile(before, after, 0.99) == 50.0
    assert bucket_quantile(before, after, 1.0) == 100.0
    assert bucket_quantile(after, after, 0.99) is None  # nothing observed in the window
