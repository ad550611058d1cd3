"""The auditor's accounting on records written straight into a real topic: delivered, missing,
duplicates, out of order, device drops, other runs skipped, SLO verdicts with reasons."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaProducer

from simulator import audit as auditor
from simulator.scenario import Slos

pytestmark = pytest.mark.broker

RUN = "audit-test-run"


async def _produce(bootstrap: str, topic: str, records: list[tuple[str, int, str]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        now = int(time.time() * 1000)
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
            await producer.send_and_wait(topic, json.dumps(value).encode(), key=device.encode())
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
