"""Scenario files: the shipped ones validate; a wrong one stops with the offending key and its line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simulator.scenario import ScenarioError, load, parse

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("name", ["thundering-herd", "herd-10k", "herd-100k-multihost", "smoke"])
def test_shipped_scenarios_validate(name: str) -> None:
    scn, _ = load(ROOT / "scenarios" / f"{name}.yml")
    assert scn.phases and scn.devices.count >= 200


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
