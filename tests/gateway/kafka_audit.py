"""Read a whole topic back from the real broker and check (device, seq) delivery."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[dict]:
    """Every record of ``topic`` (from offset 0 to the current end), values decoded as JSON."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            partitions = [
                TopicPartition(topic, p) for p in sorted(await consumer._client._wait_on_metadata(topic))
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[dict] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"reading {topic} did not reach the end offsets {end} in {timeout_s}s")
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, messages in batches.items():
                for msg in messages:
                    value = json.loads(msg.value)
                    value["_key"] = msg.key.decode() if msg.key is not None else None
                    value["_partition"] = tp.partition
                    records.append(value)
        return records
    finally:
        await consumer.stop()


@dataclass
class Audit:
    delivered: int  # distinct (device, seq)
    duplicates: int  # extra copies
    missing: list[tuple[str, int]]
    unexpected: int  # records not in the expected set

    @property
    def exactly_once(self) -> bool:
        return not self.missing and not self.duplicates and not self.unexpected


def audit(records: list[dict], expected: dict[str, range]) -> Audit:
    """Compare records to ``expected`` {device_id: range of seqs}; other devices' records are unexpected."""
    seen = Counter((r["device_id"], r["seq"]) for r in records)
    unexpected = sum(c for (d, s), c in seen.items() if d not in expected or s not in expected[d])
    missing = [(d, s) for d, seqs in expected.items() for s in seqs if (d, s) not in seen]
    duplicates = sum(c - 1 for (d, s), c in seen.items() if d in expected and s in expected[d] and c > 1)
    delivered = sum(1 for (d, s) in seen if d in expected and s in expected[d])
    return Audit(delivered, duplicates, missing, unexpected)
