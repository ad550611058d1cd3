"""Faults of a distributed run: the plan, the injector script on a real network namespace, the log
collection, the audit's attribution of duplicates, and the matrix report."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from simulator.audit import auditor as audit
from simulator.faults import plan as faults
from simulator.report import matrix
from simulator.scenario import ScenarioError, parse

ROOT = Path(__file__).resolve().parents[2]
INJECTOR = ROOT / "ansible" / "files" / "ibp-fault"

SCENARIO = """phases:
  - {name: n, kind: normal, duration_s: 10}
  - {name: o, kind: outage, duration_s: 30}
  - {name: r, kind: recovery, until: drained}
faults:
  events:
"""
GROUPS = {"brokers": ["b0"], "gateways": ["g0"], "agents": ["a0", "a1", "a2"]}


def _plan(events: str) -> list[dict]:
    return faults.plan(parse(SCENARIO + events), 1000.0, GROUPS, ("10.0.0.5", 5000))


def test_plan_puts_each_fault_on_its_host_at_flush_plus_at_s() -> None:
    entries = _plan(
        "    - {action: broker-restart, at_s: 3, down_s: 8}\n"
        "    - {action: gateway-restart, signal: SIGKILL, at_s: 2}\n"
        "    - {action: agent-reboot, target: 1}\n"
        "    - {action: broker-kill, at_s: 4, down_s: 6}\n"
    )
    by = {e["label"]: e for e in entries}
    assert by["broker-kill"]["argv"] == ["broker-kill", "automq", "6"]
    assert by["broker-kill"]["host"] == "b0" and by["broker-kill"]["params"] == {"at_s": 4.0, "down_s": 6.0}
    assert by["broker-restart"]["host"] == "b0" and by["broker-restart"]["planned_at"] == 1043.0
    assert by["broker-restart"]["argv"] == ["broker-restart", "automq", "8"]
    assert by["gateway-restart-sigkill"]["argv"] == ["gateway-restart", "iot-gateway", "SIGKILL"]
    assert by["agent-reboot"]["host"] == "a1" and by["agent-reboot"]["params"] == {"at_s": 2.0}


def test_link_impair_on_every_agent_expands_to_one_entry_per_host() -> None:
    entries = _plan(
        "    - {action: link-impair, target: -1, delay_ms: 40, jitter_ms: 10, reorder_percent: 20}\n"
    )
    assert [e["host"] for e in entries] == ["a0", "a1", "a2"]
    assert entries[0]["argv"][:5] == [
        "link-impair",
        "/opt/iot-simulator/venv/bin/python",
        "10.0.0.5",
        "5000",
        "15",
    ]


def test_a_target_beyond_the_group_names_the_key_and_the_hosts() -> None:
    with pytest.raises(
        ScenarioError, match=r"faults.events\[0\].target: 5 .*'agents', which has 3 host\(s\) \(a0, a1, a2\)"
    ):
        _plan("    - {action: partition, target: 5}\n")


def _bundle(tmp_path: Path, entries: list[dict], logs: dict[str, list[dict]], agents: list[dict]) -> Path:
    b = tmp_path / "run"
    (b / "agents").mkdir(parents=True)
    (b / "faults-plan.json").write_text(json.dumps(entries))
    for i, r in enumerate(agents):
        (b / "agents" / f"agent-{i}.json").write_text(json.dumps(r))
    for host_label, lines in logs.items():
        host, label = host_label.split("/")
        d = b / "faults" / host
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{label}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"event": "torn')
    return b


def test_collect_reads_the_logs_and_takes_a_reboot_end_from_the_agent(tmp_path: Path) -> None:
    entries = _plan(
        "    - {action: gateway-restart, signal: SIGKILL}\n    - {action: agent-reboot, target: 1}\n"
    )
    logs = {
        "g0/gateway-restart-sigkill": [
            {"event": "scheduled", "ts": 1000.0},
            {"event": "start", "ts": 1042.01},
            {"event": "end", "ts": 1044.5},
        ],
        "a1/agent-reboot": [{"event": "start", "ts": 1042.02}],
    }
    agents = [{"agent_index": 1, "markers": [{"event": "agent_restart", "ts": 1049.0, "down_s": 7.0}]}]
    rows = faults.collect(_bundle(tmp_path, entries, logs, agents))
    kill, reboot = rows
    assert (kill["started_at"], kill["ended_at"], kill["lasted_s"], kill["error"]) == (
        1042.01,
        1044.5,
        2.49,
        None,
    )
    assert kill["late_s"] == pytest.approx(0.01)
    assert reboot["ended_at"] == 1049.0 and "resumed" in reboot["note"]


def test_collect_reports_a_fault_that_never_ran(tmp_path: Path) -> None:
    entries = _plan("    - {action: partition}\n")
    rows = faults.collect(_bundle(tmp_path, entries, {}, []))
    assert rows[0]["started_at"] is None and "no log" in rows[0]["error"]
    verdict = audit.fault_verdict(audit.attribute_duplicates(rows, [])["faults"])
    assert not verdict["pass"] and "0 of 1" in verdict["reason"]


def test_broker_node_loss_needs_three_brokers_and_powers_the_host_off() -> None:
    with pytest.raises(ScenarioError, match=r"needs a cluster of at least 3 brokers.*has 1"):
        _plan("    - {action: broker-node-loss}\n")
    cluster = {**GROUPS, "brokers": ["b0", "b1", "b2"]}
    (entry,) = faults.plan(
        parse(SCENARIO + "    - {action: broker-node-loss, target: 2}\n"), 1000.0, cluster, ("10.0.0.5", 5000)
    )
    assert (entry["host"], entry["argv"], entry["params"]) == ("b2", ["node-loss"], {"at_s": 2.0})


def test_gateway_host_loss_needs_two_gateways_and_resets_the_host() -> None:
    with pytest.raises(ScenarioError, match=r"gateway-host-loss needs at least 2 gateways.*has 1"):
        _plan("    - {action: gateway-host-loss}\n")
    pair = {**GROUPS, "gateways": ["g0", "g1"]}
    (entry,) = faults.plan(
        parse(SCENARIO + "    - {action: gateway-host-loss, target: 1}\n"),
        1000.0,
        pair,
        [("10.0.0.5", 5000), ("10.0.0.6", 5000)],
    )
    assert (entry["host"], entry["argv"]) == ("g1", ["host-loss", "iot-gateway", "5000"])


def test_a_partition_cuts_the_agent_off_every_gateway() -> None:
    (entry,) = faults.plan(
        parse(SCENARIO + "    - {action: partition, target: 2}\n"),
        1000.0,
        {**GROUPS, "gateways": ["g0", "g1"]},
        [("10.0.0.5", 5000), ("10.0.0.6", 5000)],
    )
    assert entry["argv"] == ["partition", "10.0.0.5,10.0.0.6", "15"]


def _host_loss_rows(tmp_path: Path, log: list[dict]) -> list[dict]:
    entries = faults.plan(
        parse(SCENARIO + "    - {action: gateway-host-loss, target: 1}\n"),
        1000.0,
        {**GROUPS, "gateways": ["g0", "g1"]},
        [("10.0.0.5", 5000), ("10.0.0.6", 5000)],
    )
    bundle = _bundle(tmp_path, entries, {"g1/gateway-host-loss": log}, [])
    return audit.attribute_duplicates(faults.collect(bundle), [1_043_000, 1_400_000])["faults"]


def test_a_gateway_host_loss_ends_when_the_gateway_listens_after_the_boot(tmp_path: Path) -> None:
    log = [
        {"event": "scheduled", "ts": 1000.0},
        {"event": "start", "ts": 1042.0},
        {"event": "scheduled", "ts": 1044.0},
        {"event": "booted", "ts": 1044.0, "host_up_s": 1},
        {"event": "end", "ts": 1045.5},
    ]
    (row,) = _host_loss_rows(tmp_path, log)
    assert (row["error"], row["lasted_s"]) == (None, 3.5) and "after the boot" in row["note"]
    assert row["duplicates"] == 1 and "high-water marks" in row["duplicate_cause"]
    assert audit.fault_verdict([row])["pass"]


def test_a_gateway_that_never_came_back_fails_the_fault(tmp_path: Path) -> None:
    (row,) = _host_loss_rows(
        tmp_path, [{"event": "scheduled", "ts": 1000.0}, {"event": "start", "ts": 1042.0}]
    )
    assert "did not answer again after the boot" in row["error"]
    assert not audit.fault_verdict([row])["pass"]


def _node_loss_rows(tmp_path: Path, unreachable: bool, log: list[dict]) -> list[dict]:
    cluster = {**GROUPS, "brokers": ["b0", "b1", "b2"]}
    entries = faults.plan(
        parse(SCENARIO + "    - {action: broker-node-loss}\n"), 1000.0, cluster, ("10.0.0.5", 5000)
    )
    bundle = _bundle(tmp_path, entries, {"b0/broker-node-loss": log} if log else {}, [])
    if unreachable:
        (bundle / "faults" / "b0").mkdir(parents=True, exist_ok=True)
        (bundle / "faults" / "b0" / "broker-node-loss.jsonl.unreachable").write_text("{}\n")
    return audit.attribute_duplicates(faults.collect(bundle), [1_042_500, 1_400_000])["faults"]


def test_a_lost_host_is_proven_by_being_unreachable_and_explains_later_duplicates(tmp_path: Path) -> None:
    (row,) = _node_loss_rows(tmp_path, unreachable=True, log=[])
    assert row["error"] is None and row["lasts_to_end"] and row["started_at"] == row["planned_at"]
    assert row["duplicates"] == 2 and "new leader" in row["duplicate_cause"]
    assert audit.fault_verdict([row])["pass"]


def test_a_host_that_still_answers_was_not_lost(tmp_path: Path) -> None:
    log = [
        {"event": "scheduled", "ts": 1000.0},
        {"event": "error", "ts": 1042.0, "detail": "poweroff refused"},
    ]
    (row,) = _node_loss_rows(tmp_path, unreachable=False, log=log)
    assert "still answered" in row["error"] and "poweroff refused" in row["error"]
    assert not audit.fault_verdict([row])["pass"]


def test_duplicates_are_attributed_to_the_fault_window_they_land_in() -> None:
    rows = [
        {
            "label": "gateway-restart-sigkill",
            "action": "gateway-restart",
            "started_at": 100.0,
            "ended_at": 102.0,
        },
        {"label": "partition", "action": "partition", "started_at": 300.0, "ended_at": 310.0},
    ]
    out = audit.attribute_duplicates(rows, [101_000, 125_000, 250_000, 311_000])
    assert [f["duplicates"] for f in out["faults"]] == [2, 1]
    assert out["unexplained_duplicates"] == 1
    assert "high-water mark" in out["faults"][0]["duplicate_cause"]


@pytest.fixture
def netns() -> str:
    if shutil.which("iptables") is None or shutil.which("ip") is None:
        pytest.fail("iptables and iproute2 are needed (make setup installs them)")
    name = f"ibpf-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_the_injector_cuts_and_heals_a_partition_and_logs_it(netns: str, tmp_path: Path) -> None:
    """ibp-fault itself, in its own network namespace: rules in place for the duration, gone after."""
    at = time.time() + 0.5
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            str(INJECTOR),
            "run1",
            "partition",
            f"{at:.3f}",
            "partition",
            "127.0.0.9,127.0.0.10",
            "1.5",
        ],
        env={"IBP_FAULT_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    time.sleep(1.2)
    during = subprocess.run(
        ["ip", "netns", "exec", netns, "iptables", "-S"], capture_output=True, text=True
    ).stdout
    assert proc.wait(timeout=10) == 0
    after = subprocess.run(
        ["ip", "netns", "exec", netns, "iptables", "-S"], capture_output=True, text=True
    ).stdout
    for peer in ("127.0.0.9", "127.0.0.10"):  # every gateway of the run
        assert f"-A OUTPUT -d {peer}/32" in during and f"-A INPUT -s {peer}/32" in during
    assert "127.0.0." not in after
    log = [json.loads(x) for x in (tmp_path / "run1" / "partition.jsonl").read_text().splitlines()]
    events = [e["event"] for e in log]
    assert events == ["scheduled", "start", "end"]
    start, end = log[1]["ts"], log[2]["ts"]
    assert at - 0.05 <= start <= at + 0.5
    assert 1.4 <= end - start <= 2.5


def test_the_injector_refuses_bad_arguments_and_logs_the_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(INJECTOR), "run2", "x", f"{time.time():.3f}", "gateway-restart", "iot-gateway"],
        env={"IBP_FAULT_DIR": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "gateway-restart needs SERVICE SIGTERM|SIGKILL" in result.stderr
    log = [json.loads(x) for x in (tmp_path / "run2" / "x.jsonl").read_text().splitlines()]
    assert log[-1]["event"] == "error"


def test_matrix_report_has_one_row_per_run_and_fails_a_run_without_audit(tmp_path: Path) -> None:
    good = tmp_path / "r1"
    good.mkdir()
    fault = {
        "label": "partition",
        "action": "partition",
        "host": "a0",
        "started_at": 50.0,
        "ended_at": 60.0,
        "lasted_s": 10.0,
        "duplicates": 0,
    }
    (good / "audit.json").write_text(
        json.dumps(
            {
                "run_id": "r1",
                "phases": {"flush_start": 47.0},
                "faults": [fault],
                "delivered": 100,
                "missing": 0,
                "duplicates": 0,
                "buffered_delivered": 50,
                "buffered_expected": 50,
                "peak_rate_during_flush": 900,
                "drain_time_s": 4.0,
                "verdict": "PASS",
                "slos": [{"slo": "all_delivered", "pass": True}],
                "timeline": [{"t": 46, "rate": 10}, {"t": 48, "rate": 900}],
            }
        )
    )
    out = tmp_path / "matrix"
    rows = matrix.write(out, [good, tmp_path / "r2"])
    assert rows[0]["fault"] == "partition" and rows[0]["fault_at_s"] == 3.0 and rows[0]["missing"] == 0
    assert rows[1]["verdict"] == "FAIL" and "no audit.json" in rows[1]["error"]
    assert json.loads((out / "matrix.json").read_text())["verdict"] == "FAIL"
    assert "partition" in (out / "matrix.txt").read_text() and "<img" in (out / "matrix.html").read_text()
    lost = {**fault, "label": "broker-node-loss", "ended_at": None, "lasted_s": None, "lasts_to_end": True}
    audit_lost = {**json.loads((good / "audit.json").read_text()), "faults": [lost]}
    assert matrix.row(good, audit_lost)["fault_lasted_s"] == "to end"  # not 0: the host never came back


def test_disk_full_fills_the_agents_state_dir_and_must_expect_the_failure() -> None:
    entries = faults.plan(
        parse(
            SCENARIO
            + "    - {action: disk-full, target: 2, duration_s: 20, max_fill_mb: 300}\n"
            + "  expect_failure: is full\n"
        ),
        1000.0,
        GROUPS,
        ("10.0.0.5", 5000),
        agent_state_dir="/srv/state",
    )
    (e,) = entries
    assert e["host"] == "a2" and e["argv"] == ["disk-full", "/srv/state", "20", "300"]
    assert e["params"] == {"at_s": 2.0, "duration_s": 20.0, "max_fill_mb": 300}
    with pytest.raises(ScenarioError, match=r"faults\.expect_failure"):
        parse(SCENARIO + "    - {action: disk-full}\n")


def test_matrix_passes_a_run_that_failed_as_its_scenario_expected(tmp_path: Path) -> None:
    """disk-full runs fail on purpose: expected-failure.json (from scripts/fault-matrix.sh) makes a
    PASS row; the same run without it stays a FAIL."""
    run = tmp_path / "r3"
    run.mkdir()
    (run / "expected-failure.json").write_text(
        json.dumps(
            {
                "scenario": "scenarios/faults/disk-full.yml",
                "expect": "is full (No space left on device)",
                "line": "agent failed: 10.0.0.12:9510: state dir /var/lib/iot-simulator is full (No space left on device): ...",
            }
        )
    )
    other = tmp_path / "r4"
    other.mkdir()
    rows = matrix.write(tmp_path / "matrix", [run, other])
    assert rows[0]["verdict"] == "PASS" and rows[0]["fault"] == "disk-full", rows[0]
    assert "failed as expected" in rows[0]["error"] and rows[1]["verdict"] == "FAIL"
