"""A small real limit search: two short runs against a local broker and gateway, one report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.limit import main

pytestmark = pytest.mark.broker

TINY = """\
name: limit-tiny
devices: {count: 50, buffer_capacity: 600}
reading: {rate_hz: 2.0, payload_bytes: 32}
transport: {ack_timeout_ms: 500, backoff_base_ms: 100, backoff_cap_ms: 1000, sockets: 4, no_ack_fail_s: 20}
flush: {batch_size: 16, max_datagrams_per_s: 50, jitter_ms: 200}
phases:
  - {name: normal, kind: normal, duration_s: 3}
  - {name: outage, kind: outage, duration_s: 3}
  - {name: recovery, kind: recovery, until: drained, max_s: 20, after_drained_s: 2}
slos: {all_delivered: true, min_peak_rate: 50, recovery_within_s: 15, max_errors: 0, max_clock_skew_ms: 1000}
final_drain_s: 10
"""


def test_real_limit_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scn = tmp_path / "tiny.yml"
    scn.write_text(TINY)
    assert main(str(scn), "devices", 50, 100, tmp_path, budget_s=120, max_runs=2) == 0
    (report,) = tmp_path.glob("limit-*")
    doc = json.loads((report / "limit.json").read_text())
    assert [s["size"] for s in doc["steps"]] == [50, 100]
    assert all(Path(s["bundle"], "audit.json").exists() for s in doc["steps"])
    assert doc["steps"][0]["backlog"] == 50 * 2 * 3
    assert doc["stopped"] in ("max reached", "converged", "failed at min", "max runs reached")
    assert (report / "limit.png").stat().st_size > 0 and (report / "summary.txt").exists()
    assert "limit: step 2:" in capsys.readouterr().out
    # the burst.yml runner reads its steps from bundles alone: the same figures from these bundles
    from harness.limit_playbook import step_from_bundle

    for s in doc["steps"]:
        again = step_from_bundle(Path(s["bundle"]), s["size"], wall_s=0, command="").to_dict()
        same = ("passed", "failed_slos", "backlog", "drain_s", "peak_rate", "missing", "busy", "overflow")
        assert {k: again[k] for k in same} == {k: s[k] for k in same}
