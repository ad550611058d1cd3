"""A run the gateway never answers stops in seconds and says why; a drain that did not happen is reported
as such; the gateway's refusals count as errors; a run shows its progress on a non-terminal output.
No broker: a UDP socket that swallows everything stands in for a gateway that refuses every datagram
(tests/simulator/test_runs.py has the same against a real gateway with a small max_datagram_bytes)."""

from __future__ import annotations

import asyncio
import io
import secrets
import socket
import time

from hdrh.histogram import HdrHistogram

from simulator.audit import auditor
from simulator.devices.console import follow
from simulator.devices.fleet import Fleet
from simulator.orchestration import controller
from simulator.orchestration.runner import new_run_id, run_phases
from simulator.report import bundle
from simulator.scenario import Slos, parse

KEY = secrets.token_bytes(32)
SILENT = (
    "devices: {count: 20}\n"
    "transport: {ack_timeout_ms: 200, backoff_base_ms: 50, backoff_cap_ms: 500, no_ack_fail_s: 2}\n"
    "flush: {jitter_ms: 50}\nphases: [{name: n, kind: normal, duration_s: 60}]\nfinal_drain_s: 60\n"
)


def _run(scn_text: str, port: int, refusals=None) -> tuple[dict, float]:
    async def go() -> tuple[dict, float]:
        scn = parse(scn_text)
        fleet = Fleet(scn, "127.0.0.1", port, "stall-test", KEY)
        await fleet.open()
        started = time.monotonic()
        try:
            res = await asyncio.wait_for(run_phases(fleet, scn, refusals=refusals), 30)
        finally:
            fleet.close()
        return res, time.monotonic() - started

    return asyncio.run(go())


def test_a_gateway_refusing_every_datagram_fails_the_run_fast_naming_the_reason() -> None:
    calls = {"n": 0}

    async def refusals() -> dict[str, int]:  # the gateway's oversized counter rising, as its /metrics says
        calls["n"] += 1
        return {"oversized": 100 * calls["n"], "bad_magic": 3}

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw:
        gw.bind(("127.0.0.1", 0))  # takes every datagram, answers none
        res, took = _run(SILENT, gw.getsockname()[1], refusals)
    assert res["status"] == "failed", res["status"]
    assert took < 10, f"a 60 s phase must stop within seconds of the stall, took {took:.1f} s"
    failure = res["failure"]
    assert "no ACK or BUSY from the gateway" in failure and "oversized +" in failure, failure
    assert "bad_magic" not in failure, "a reason that did not rise is not a cause"
    assert "max_datagram_bytes" in failure
    assert any(m["event"] == "run_failed" for m in res["markers"])


def test_without_the_gateways_metrics_the_failure_says_where_to_look() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw:
        gw.bind(("127.0.0.1", 0))
        res, took = _run(SILENT, gw.getsockname()[1])
    assert res["status"] == "failed" and took < 10
    assert "iot_invalid_datagrams_total" in res["failure"] and "'oversized'" in res["failure"], res["failure"]


def _collected(flush_s: float, delivered: list[int], device: str = "sim-000000") -> auditor.Collected:
    col = auditor.Collected()
    for seq in delivered:
        ts = int((flush_s - 100 + seq) * 1000)  # every record arrived before the flush
        col.seqs[device].append(seq)
        col.stamps[device].append(ts)
        col.per_second[ts // 1000] += 1
        col.generated_per_second[ts // 1000] += 1
        col.latency_per_second.setdefault(ts // 1000, HdrHistogram(1, 3_600_000, 2)).record_value(20)
        col.first_ts_ms = ts if col.first_ts_ms is None else min(col.first_ts_ms, ts)
        col.last_ts_ms = ts if col.last_ts_ms is None else max(col.last_ts_ms, ts)
        col.pre_flush_last_append_ms = max(col.pre_flush_last_append_ms, ts)
    col.records = len(delivered)
    return col


def _agent(flush_s: float, **extra) -> dict:
    # device generated 0..99; 40..99 during the outage; none of the outage readings reached Kafka
    return {
        "agent_index": 0,
        "counters": {},
        "markers": [
            {"event": "outage_start", "ts": flush_s - 60, "at": flush_s - 60},
            {"event": "flush_start", "ts": flush_s, "at": flush_s},
        ],
        "expected": [["sim-000000", 0, 100, 40, 100, []]],
        **extra,
    }


def test_a_drain_that_did_not_happen_is_reported_as_such_not_as_zero_seconds() -> None:
    flush = float(int(time.time()) - 10)
    col = _collected(flush, list(range(40)))
    audit = auditor.evaluate(col, [_agent(flush)], Slos(min_peak_rate=0), "r")
    assert audit["drained"] is False and audit["drain_time_s"] is None
    text = bundle.summary_text(audit)
    assert "NOT DRAINED (60 of 60 buffered readings never reached Kafka)" in text, text
    assert "drain time 0.0 s" not in text
    assert bundle.phases_json(audit)["markers"].get("drained_in_kafka") is None


def test_a_drain_that_happened_has_its_time() -> None:
    flush = float(int(time.time()) - 10)
    col = _collected(flush, list(range(100)))
    col.pre_flush_last_append_ms = int((flush + 2.5) * 1000)  # the last outage reading landed 2.5 s in
    audit = auditor.evaluate(col, [_agent(flush)], Slos(min_peak_rate=0), "r")
    assert audit["drained"] is True and audit["drain_time_s"] == 2.5
    assert "drain time 2.5 s" in bundle.summary_text(audit)


def test_gateway_refusals_and_a_failed_run_fail_the_audit() -> None:
    flush = float(int(time.time()) - 10)
    col = _collected(flush, list(range(100)))
    agent = _agent(
        flush,
        status="failed",
        failure="no ACK or BUSY from the gateway for 12 s ... oversized +2,345",
        gateway_refusals={"oversized": 2345, "bad_magic": 0},
    )
    audit = auditor.evaluate(col, [agent], Slos(min_peak_rate=0, check_recovery=False), "r")
    assert audit["errors"]["gateway_refused_oversized"] == 2345
    assert "gateway_refused_bad_magic" not in audit["errors"]
    verdicts = {s["slo"]: s for s in audit["slos"]}
    assert not verdicts["max_errors"]["pass"] and "2345 errors" in verdicts["max_errors"]["reason"]
    assert not verdicts["run_completed"]["pass"] and "oversized +2,345" in verdicts["run_completed"]["reason"]
    assert audit["verdict"] == "FAIL"
    clean = auditor.evaluate(col, [_agent(flush)], Slos(min_peak_rate=0, check_recovery=False), "r")
    assert "run_completed" not in {s["slo"] for s in clean["slos"]} and clean["verdict"] == "PASS"


def test_progress_on_a_non_terminal_is_a_plain_line_every_few_seconds() -> None:
    scn = parse(SILENT)
    fleet = Fleet(scn, "127.0.0.1", 9, "progress-test", KEY)
    fleet.counters.generated, fleet.counters.acked, fleet.buffered = 1234, 1000, 234
    fleet.run_state = {"stage": "phases", "phase": 0, "entered": True}
    out = io.StringIO()  # isatty() is False, as in CI

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(follow(fleet, scn, stop, out, every_s=0.1))
        await asyncio.sleep(0.35)
        stop.set()
        await task

    asyncio.run(go())
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4, lines
    assert "[n] generated 1,234 acked 1,000 buffered 234" in lines[0], lines[0]
    assert "\x1b" not in out.getvalue(), "no terminal control sequences in a log"


def test_an_agent_whose_gateway_never_answers_fails_the_distributed_run_fast(agent_factory, tmp_path) -> None:
    """The agent's run fails (state error, with why); the controller stops every agent instead of waiting,
    and still writes the bundle, so burst.yml audits a FAIL with its numbers instead of having nothing."""
    first, second = agent_factory.start(2, KEY)
    lines: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw:
        gw.bind(("127.0.0.1", 0))
        started = time.monotonic()
        out, results = asyncio.run(
            controller.run(
                [first.address, second.address],
                agent_factory.token,
                parse(SILENT),
                SILENT,
                f"127.0.0.1:{gw.getsockname()[1]}",
                new_run_id("stall"),
                tmp_path,
                lead_s=1.0,
                progress=lines.append,
            )
        )
    assert time.monotonic() - started < 20, "a 60 s phase must stop within seconds"
    assert any("agent failed: " in line and "no ACK or BUSY from the gateway" in line for line in lines), (
        lines
    )
    statuses = sorted(str(r["status"]) for r in results)
    assert "failed" in statuses and set(statuses) <= {"failed", "aborted"}, statuses
    failed = next(r for r in results if r["status"] == "failed")
    assert "no ACK or BUSY from the gateway" in failed["failure"]
    assert failed["counters"]["generated"] > 0, "the failed agent's counters are in its results"
    assert len(list((out / "agents").glob("*.json"))) == 2, "both agents' results are in the bundle"
