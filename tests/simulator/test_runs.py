"""End to end on a real broker and a real gateway: the smoke burst, other runs skipped, an unreachable
gateway, and three agents armed by the controller for one T0, audited together."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from simulator.devices.fleet import Fleet
from simulator.orchestration import controller, web
from simulator.orchestration.runner import new_run_id, run_phases
from simulator.orchestration.session import audit_bundle, run_local
from simulator.scenario import load, parse

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent.parent


async def _foreign_records(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(n):
            value = {
                "device_id": "sim-000001",
                "seq": i,
                "device_ts_ms": int(time.time() * 1000),
                "gateway_ts_ms": int(time.time() * 1000),
                "proto": "ibp1",
                "payload": {"run": "some-other-run", "temp_c": 20.0},
            }
            await producer.send_and_wait(topic, json.dumps(value).encode(), key=b"sim-000001")
    finally:
        await producer.stop()


def test_smoke_burst_end_to_end_skips_other_runs(
    kafka_broker, fresh_topic, gateway_factory, tmp_path: Path
) -> None:
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    asyncio.run(_foreign_records(kafka_broker.bootstrap, fresh_topic, 37))
    scn, text = load(ROOT / "scenarios" / "smoke.yml")
    run_id = new_run_id("smoke")
    out, res = asyncio.run(run_local(scn, text, "127.0.0.1", gw.udp_port, gw.master_key, run_id, tmp_path))
    assert res["buffered_at_end"] == 0
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    assert audit["skipped_other_runs"] == 37
    assert audit["missing"] == 0 and audit["delivered"] == audit["expected"] == res["counters"]["generated"]
    assert audit["buffered_expected"] == 200 * 5 and audit["buffered_delivered"] == 1000
    assert all(isinstance(audit[k], int) for k in ("delivered", "missing", "duplicates"))
    verdicts = {s["slo"]: s["pass"] for s in audit["slos"]}
    assert verdicts["all_delivered"] and verdicts["max_errors"], audit["slos"]
    assert audit["latency_ms"]["p50"] > 0 and audit["peak_rate_during_flush"] > 0
    phases = json.loads((out / "phases.json").read_text())["markers"]
    assert phases["run_start"] < phases["outage_start"] < phases["flush_start"] < phases["drained"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and run_id in html
    assert "delivered" in (out / "summary.txt").read_text()
    assert (out / "agents" / "agent-0.json").exists() and (out / "config.json").exists()


def test_unreachable_gateway_leaves_devices_buffering_then_nothing_is_lost(
    kafka_broker, fresh_topic, gateway_factory, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now; nothing listens there until the gateway starts below
    master = secrets.token_bytes(32)
    scn = parse(
        "devices: {count: 50}\ntransport: {ack_timeout_ms: 300, backoff_base_ms: 100, backoff_cap_ms: 1000}\n"
        "flush: {jitter_ms: 100}\nphases: [{name: n, kind: normal, duration_s: 12}]\nfinal_drain_s: 30\n"
    )
    run_id = new_run_id("unreachable")

    async def go() -> tuple[dict, dict]:
        fleet = Fleet(scn, "127.0.0.1", port, run_id, master)
        await fleet.open()
        task = asyncio.create_task(run_phases(fleet, scn))
        await asyncio.sleep(3.0)
        c = fleet.counters
        during = {
            "generated": c.generated,
            "acked": c.acked,
            "buffered": fleet.buffered,
            "timeouts": c.timeouts,
        }
        await asyncio.to_thread(
            gateway_factory.start,
            kafka_broker.bootstrap,
            fresh_topic,
            master_key=master,
            udp={"port": port},
        )
        res = await task
        fleet.close()
        return during, res

    during, res = asyncio.run(go())
    assert during["acked"] == 0 and during["generated"] >= 100
    assert during["buffered"] == during["generated"], (
        "an unreachable gateway must leave every reading buffered"
    )
    assert during["timeouts"] > 0
    assert res["buffered_at_end"] == 0 and res["counters"]["dropped_overflow"] == 0
    out = tmp_path / run_id
    from simulator.report import bundle

    bundle.write_inputs(out, "phases: [{name: n, kind: normal, duration_s: 12}]\n", {"run_id": run_id}, [res])
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    assert audit["missing"] == 0 and audit["delivered"] == res["counters"]["generated"]


def test_agent_refuses_requests_without_the_token(agent_factory) -> None:
    (agent,) = agent_factory.start(1, secrets.token_bytes(32))

    async def go() -> None:
        for token in (None, "wrong-token-0123456789"):
            for method, path, body in (("GET", "/status", None), ("POST", "/arm", {"t0": time.time()})):
                with pytest.raises(web.HttpError) as err:
                    await web.request(agent.address, method, path, token, body)
                assert err.value.status == 401
        status = await web.request(agent.address, "GET", "/status", agent_factory.token)
        assert status["state"] == "idle"

    asyncio.run(go())


def test_three_agents_one_t0_audited_together(
    kafka_broker, fresh_topic, gateway_factory, agent_factory, small_burst: str, tmp_path: Path
) -> None:
    master = secrets.token_bytes(32)
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, master_key=master)
    agents = agent_factory.start(3, master)
    scn = parse(small_burst)
    run_id = new_run_id("three-agents")
    out, results = asyncio.run(
        controller.run(
            [a.address for a in agents],
            agent_factory.token,
            scn,
            small_burst,
            f"127.0.0.1:{gw.udp_port}",
            run_id,
            tmp_path,
            lead_s=2.0,
            progress=lambda _: None,
        )
    )
    assert sorted(r["agent_index"] for r in results) == [0, 1, 2]
    assert len({r["t0"] for r in results}) == 1, "every agent must be armed for the same T0"
    assert all(abs(r["start_skew_ms"]) < 500 for r in results), [r["start_skew_ms"] for r in results]
    ids = [row[0] for r in results for row in r["expected"]]
    assert len(ids) == len(set(ids)) == 300
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    assert audit["agents"] == 3 and audit["devices"] == 300
    assert audit["missing"] == 0 and audit["delivered"] == audit["expected"] > 0
    assert isinstance(audit["duplicates"], int) and "duplicates" in (out / "summary.txt").read_text()
    assert audit["buffered_delivered"] == audit["buffered_expected"] == 300 * 4


def test_busy_is_honoured_and_nothing_is_lost(
    kafka_broker, fresh_topic, gateway_factory, tmp_path: Path
) -> None:
    gw = gateway_factory.start(
        kafka_broker.bootstrap, fresh_topic, limits={"max_inflight_readings": 255, "busy_retry_after_ms": 100}
    )
    text = (
        "devices: {count: 400}\ntransport: {sockets: 8}\nflush: {batch_size: 64, jitter_ms: 0, max_datagrams_per_s: 1000}\n"
        "phases:\n  - {name: n, kind: normal, duration_s: 2}\n  - {name: o, kind: outage, duration_s: 6}\n"
        "  - {name: r, kind: recovery, until: drained, max_s: 60, after_drained_s: 1}\n"
        "slos: {min_peak_rate: 1}\nfinal_drain_s: 30\n"
    )
    scn = parse(text)
    out, res = asyncio.run(
        run_local(scn, text, "127.0.0.1", gw.udp_port, gw.master_key, new_run_id("busy"), tmp_path)
    )
    assert res["counters"]["busy"] > 0, (
        "a 255-reading in-flight limit must answer BUSY to a 2,400-reading flush"
    )
    assert gw.wait_metric("iot_busy_sent_total", 1) > 0
    assert res["buffered_at_end"] == 0
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    assert audit["missing"] == 0 and audit["buffered_delivered"] == audit["buffered_expected"] == 400 * 6


def test_compare_puts_two_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.report.compare import main as compare

    for name, peak in (("run-a", 6000), ("run-b", 9000)):
        (tmp_path / name).mkdir()
        audit = {
            "run_id": name,
            "verdict": "PASS",
            "delivered": 10,
            "missing": 0,
            "duplicates": 0,
            "peak_rate": peak,
        }
        (tmp_path / name / "audit.json").write_text(json.dumps(audit))
    assert compare("run-a", "run-b", tmp_path) == 0
    out = capsys.readouterr().out
    assert "run-a" in out and "run-b" in out and "+3,000" in out
    with pytest.raises(FileNotFoundError, match=r"no audit\.json"):
        compare("run-a", "run-missing", tmp_path)


def test_a_gateway_with_small_max_datagram_bytes_fails_the_run_fast_naming_oversized(
    kafka_broker, fresh_topic, gateway_factory, tmp_path: Path
) -> None:
    """The herd-10k issue in small: datagrams over the gateway's limit are dropped unanswered ("oversized").

    The run must stop within seconds and say so, count the refusals as errors and fail max_errors,
    instead of retrying until max_s and passing max_errors with "0 errors".
    """
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"max_datagram_bytes": 100})
    text = (
        "devices: {count: 20}\n"
        "transport: {ack_timeout_ms: 300, backoff_base_ms: 50, backoff_cap_ms: 1000, no_ack_fail_s: 3}\n"
        "flush: {jitter_ms: 50}\nphases: [{name: n, kind: normal, duration_s: 120}]\nfinal_drain_s: 60\n"
        "slos: {min_peak_rate: 0}\n"
    )
    scn = parse(text)
    started = time.monotonic()
    out, res = asyncio.run(
        run_local(
            scn,
            text,
            "127.0.0.1",
            gw.udp_port,
            gw.master_key,
            new_run_id("oversized"),
            tmp_path,
            metrics_url=f"http://127.0.0.1:{gw.http_port}/metrics",
        )
    )
    assert time.monotonic() - started < 30, "a 120 s phase must stop within seconds"
    assert res["status"] == "failed" and "oversized +" in res["failure"], res["failure"]
    assert res["gateway_refusals"].get("oversized", 0) > 0
    audit = asyncio.run(audit_bundle(out, kafka_broker.bootstrap, fresh_topic, scn))
    verdicts = {s["slo"]: s for s in audit["slos"]}
    assert audit["errors"]["gateway_refused_oversized"] == res["gateway_refusals"]["oversized"]
    assert not verdicts["max_errors"]["pass"] and not verdicts["run_completed"]["pass"]
    assert audit["verdict"] == "FAIL" and "oversized" in (out / "summary.txt").read_text()
