"""Scenario files: the shipped ones validate; a wrong one stops with the offending key and its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.scenario import ScenarioError, flush_offset_s, load, parse

ROOT = Path(__file__).resolve().parent.parent.parent


SHIPPED = sorted(str(p.relative_to(ROOT / "scenarios")) for p in (ROOT / "scenarios").rglob("*.yml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_validate(name: str) -> None:
    scn, _ = load(ROOT / "scenarios" / name)
    assert scn.phases and scn.devices.count >= 200


def test_every_fault_action_has_a_shipped_matrix_scenario() -> None:
    seen = set()
    for path in sorted((ROOT / "scenarios" / "faults").glob("*.yml")):
        scn, _ = load(path)
        assert len(scn.faults.events) == 1, f"{path.name}: a matrix scenario injects exactly one fault"
        ev = scn.faults.events[0]
        seen.add(ev.label)
        assert ev.at_s < scn.phases[-1].max_s, f"{path.name}: the fault must fall inside the flush"
    assert {"broker-restart", "gateway-restart-sigterm", "gateway-restart-sigkill", "partition"} <= seen
    assert {"agent-reboot", "link-impair"} <= seen


FAULTY = """phases:
  - {name: n, kind: normal, duration_s: 3}
  - {name: o, kind: outage, duration_s: 5}
  - {name: r, kind: recovery, until: drained}
faults:
  events:
"""


def test_fault_events_parse_with_their_flush_offset() -> None:
    scn = parse(
        FAULTY
        + "    - {action: gateway-restart, signal: SIGKILL, at_s: 1.5}\n"
        + "    - {action: link-impair, target: -1, loss_percent: 5, delay_ms: 40, jitter_ms: 10, reorder_percent: 20}\n"
    )
    kill, impair = scn.faults.events
    assert (kill.label, kill.at_s, kill.target) == ("gateway-restart-sigkill", 1.5, 0)
    assert (impair.label, impair.target, impair.delay_ms) == ("link-impair", -1, 40)
    assert flush_offset_s(scn) == 8


@pytest.mark.parametrize(
    ("event", "key", "words"),
    [
        ("{action: reboot}", "faults.events[0].action", "one of broker-restart"),
        ("{action: partition, target: -1}", "faults.events[0].target", "only for link-impair"),
        ("{action: link-impair}", "faults.events[0]", "at least one of loss_percent"),
        ("{action: link-impair, delay_ms: 5, jitter_ms: 9}", "faults.events[0].jitter_ms", "<= delay_ms"),
        ("{action: link-impair, reorder_percent: 5}", "faults.events[0].reorder_percent", "needs a delay_ms"),
        ("{action: gateway-restart, signal: SIGHUP}", "faults.events[0].signal", "SIGTERM, SIGKILL"),
        ("{action: broker-restart, at_s: -2}", "faults.events[0].at_s", "0..3600"),
    ],
)
def test_bad_fault_events_name_the_key(event: str, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse(FAULTY + f"    - {event}\n", "bad.yml")
    msg = str(err.value)
    assert msg.startswith(f"bad.yml:7: key '{key}'"), msg
    assert words in msg


def test_two_faults_with_one_name_are_refused() -> None:
    with pytest.raises(ScenarioError, match="distinct name"):
        parse(FAULTY + "    - {action: partition}\n    - {action: partition, at_s: 9}\n")


def test_faults_need_a_flush_after_timed_phases() -> None:
    with pytest.raises(ScenarioError, match="recovery phase"):
        parse("phases: [{name: n, kind: normal, duration_s: 3}]\nfaults: {events: [{action: partition}]}\n")


def test_thundering_herd_is_the_pilot_test() -> None:
    scn, _ = load(ROOT / "scenarios" / "thundering-herd.yml")
    kinds = [(p.kind, p.duration_s, p.until) for p in scn.phases]
    assert scn.devices.count == 1000 and scn.reading.rate_hz == 1.0
    assert kinds[:2] == [("normal", 30, "time"), ("outage", 60, "time")]
    assert kinds[2][0] == "recovery" and kinds[2][2] == "drained"
    assert scn.slos.min_peak_rate == 5000 and scn.slos.recovery_within_s == 30 and scn.slos.max_errors == 0


def test_defaults_are_the_pilot_success_criteria() -> None:
    scn = parse("phases: [{name: n, kind: normal, duration_s: 1}]")
    assert scn.slos.all_delivered and scn.slos.min_peak_rate == 5000
    assert scn.slos.recovery_within_s == 30 and scn.slos.max_errors == 0


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("devices:\n  count: 10\n  colour: red\n", 3, "devices.colour", "unknown key"),
        ("devices:\n  count: ten\n", 2, "devices.count", "integer"),
        ("flush:\n  jitter_ms: 5\n  batch_size: 300\n", 3, "flush.batch_size", "1..255"),
        (
            "phases:\n  - {name: a, kind: normal, duration_s: 3}\n  - {name: b, kind: outge, duration_s: 3}\n",
            3,
            "phases[1].kind",
            "one of normal, outage, recovery",
        ),
        ("phases:\n  - name: a\n    kind: outage\n    until: drained\n", 4, "phases[0].until", "recovery"),
        ("reading:\n  rate_hz: 50\n", 2, "reading.rate_hz", "0.001..10"),
        ("slos:\n  all_delivered: maybe\n", 2, "slos.all_delivered", "true or false"),
    ],
)
def test_errors_name_key_and_line(text: str, line: int, key: str, words: str) -> None:
    with pytest.raises(ScenarioError) as err:
        parse(text, "bad.yml")
    msg = str(err.value)
    assert msg.startswith(f"bad.yml:{line}: key '{key}'"), msg
    assert words in msg


def test_missing_phases_is_an_error() -> None:
    with pytest.raises(ScenarioError, match="'phases'"):
        parse("devices: {count: 3}\n")


def test_cli_stops_on_bad_scenario_with_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("devices:\n  count: 5\nflush:\n  batchsize: 4\n")
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert f"{bad}:4: key 'flush.batchsize': unknown key" in result.stderr


def test_every_problem_is_one_line_with_its_nested_key_and_line() -> None:
    text = FAULTY + "    - action: link-impair\n      delay_ms: 5\n      loss_percent: 140\n"
    text += "    - {action: partition, at_s: -1}\n"
    with pytest.raises(ScenarioError) as err:
        parse(text, "bad.yml")
    assert str(err.value).splitlines() == [
        "bad.yml:9: key 'faults.events[0].loss_percent': must be in 0..100, got 140.0",
        "bad.yml:10: key 'faults.events[1].at_s': must be in 0..3600, got -1.0",
    ]
