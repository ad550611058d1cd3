"""The Maven-assembled broker really stores and serves records: 10,000 produced, all consumed back."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from broker.kafka import KafkaBroker

pytestmark = pytest.mark.broker

N = 10_000


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=f"dev-{i % 97}".encode(), value=f"{i}".encode()) for i in range(N)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str) -> list[int]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen: list[int] = []
    try:
        while len(seen) < N:
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            for records in batch.values():
                seen.extend(int(r.value) for r in records)
    finally:
        await consumer.stop()
    return seen


def test_ten_thousand_records_round_trip(kafka_broker: KafkaBroker, fresh_topic: str) -> None:
    asyncio.run(_produce(kafka_broker.bootstrap, fresh_topic))
    seen = asyncio.run(_consume(kafka_broker.bootstrap, fresh_topic))
    assert len(seen) == N, f"consumed {len(seen)} of {N}"
    assert sorted(seen) == list(range(N)), "every record must come back exactly once"


def test_topics_tool_from_same_jars_lists_topic(kafka_broker: KafkaBroker, fresh_topic: str) -> None:
    result = kafka_broker.run_tool(
        "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", kafka_broker.bootstrap, "--list"
    )
    assert result.returncode == 0, result.stderr
    assert fresh_topic in result.stdout.split()


def test_broker_survives_restart_with_data(kafka_broker: KafkaBroker, fresh_topic: str) -> None:
    asyncio.run(_produce(kafka_broker.bootstrap, fresh_topic))
    kafka_broker.stop()
    kafka_broker.start()
    seen = asyncio.run(_consume(kafka_broker.bootstrap, fresh_topic))
    assert len(seen) == N
