"""The auditor's accounting on records written straight into a real topic: delivered, missing,
duplicates, out of order, device drops, other runs skipped, SLO verdicts with reasons."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaProducer

from simulator.audit import auditor
from simulator.scenario import Slos

pytestmark = pytest.mark.broker

RUN = "audit-test-run"


async def _produce(
    bootstrap: str, topic: str, records: list[tuple[str, int, str]], at_ms: int | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        now = at_ms or int(time.time() * 1000)
        for device, seq, run in records:
            value = {
                "device_id": device,
                "seq": seq,
                "device_ts_ms": now - 50,
                "gateway_ts_ms": now,
                "proto": "ibp1",
                "payload": {"run": run, "temp_c": 21.5},
            }
            # one partition per device keeps the order we write in, as the gateway's key does
            await producer.send_and_wait(
                topic, json.dumps(value).encode(), key=device.encode(), timestamp_ms=now
            )
    finally:
        await producer.stop()


def test_accounting_of_every_device_and_sequence(kafka_broker, fresh_topic) -> None:
    a = [("sim-000000", s, RUN) for s in (100, 101, 102, 103, 103, 104, 106, 105, 107, 108, 109)]
    # device 1 dropped 201..202 on overflow (not missing); 205 never arrives (missing)
    b = [("sim-000001", s, RUN) for s in (200, 203, 204)]
    other = [("sim-000000", s, "another-run") for s in range(5)]
    asyncio.run(_produce(kafka_broker.bootstrap, fresh_topic, a + other + b))
    agents = [
        {
            "agent_index": 0,
            "counters": {},
            "markers": [],
            "expected": [
                ["sim-000000", 100, 110, -1, -1, []],
                ["sim-000001", 200, 206, -1, -1, [[201, 202]]],
            ],
        }
    ]
    col = asyncio.run(auditor.consume(kafka_broker.bootstrap, fresh_topic, RUN))
    result = auditor.evaluate(col, agents, Slos(min_peak_rate=1, max_errors=10), RUN)
    assert result["skipped_other_runs"] == 5
    assert result["delivered"] == 10 + 3 and result["missing"] == 1
    assert result["duplicates"] == 1 and result["out_of_order"] == 1
    assert result["expected"] == 10 + 4 and result["errors"]["dropped_by_devices"] == 2
    assert result["verdict"] == "FAIL"
    assert any("1 missing" in reason for reason in result["reasons"]), result["reasons"]
    assert result["latency_ms"]["p50"] >= 1 and result["records"] == 14


def test_since_skips_the_topics_older_history_and_keeps_every_record_of_the_run(
    kafka_broker, fresh_topic
) -> None:
    """An hour-old run's records are not read again (the soak's audit time grew with every cycle);
    this run's records, on every partition they landed on, all are."""
    hour_ago = int(time.time() * 1000) - 3_600_000
    old = [(f"sim-{d:06d}", s, "an-hour-ago") for d in range(20) for s in range(50)]
    asyncio.run(_produce(kafka_broker.bootstrap, fresh_topic, old, at_ms=hour_ago))
    ours = [(f"sim-{d:06d}", s, RUN) for d in range(10) for s in range(5)]
    asyncio.run(_produce(kafka_broker.bootstrap, fresh_topic, ours))
    since = int(time.time() * 1000) - 600_000
    col = asyncio.run(auditor.consume(kafka_broker.bootstrap, fresh_topic, RUN, since_ms=since))
    assert col.records == 50 and col.skipped_other_runs == 0
    assert {d: len(v) for d, v in col.seqs.items()} == {f"sim-{d:06d}": 5 for d in range(10)}
    # from the beginning, the same run's records and the old ones skipped
    full = asyncio.run(auditor.consume(kafka_broker.bootstrap, fresh_topic, RUN))
    assert full.records == 50 and full.skipped_other_runs == 1000


def test_an_unreachable_broker_is_one_clear_error() -> None:
    """The audit run where Kafka's client port is closed (the control machine outside the VPC, as in
    the lab) says where and what to do, as an OSError the CLI prints in one line, not a traceback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the with block ends: nothing listens there
    with pytest.raises(
        ConnectionError, match=rf"cannot reach Kafka at 127.0.0.1:{port} .*burst_control_host"
    ):
        asyncio.run(auditor.consume(f"127.0.0.1:{port}", "iot_telemetry", RUN))
