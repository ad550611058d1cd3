"""confluent-kafka (librdkafka, the PyPI wheel) producer ceiling: the same records as the bare aiokafka rows,
no UDP in front, so it bounds what any librdkafka-based peer (rsyslog's omkafka included) can land from
one Python process on this machine.

Two ways: ``produce`` (one ``Producer.produce()`` per record, ``poll(0)`` every 1,000, the idiomatic use)
and ``produce_batch`` (``Producer.produce_batch()`` of 10,000 records, then ``poll(0)``). Both with acks=all,
lz4, the bench's linger and batch size, a delivery callback that counts failures, ``flush()`` at the end.
Landed records are counted from the topic's end offsets like every other peer.
"""

from __future__ import annotations

import resource
import time

from confluent_kafka import Producer

from bench.peers.common import create_topic, end_offsets_total


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # librdkafka's threads are in this process
    return usage.ru_utime + usage.ru_stime


def _producer(bootstrap: str, linger_ms: int, batch_size: int, failed: list[int]) -> Producer:
    def on_delivery(err, _msg) -> None:
        if err is not None:
            failed[0] += 1

    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": "bench-confluent",
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": linger_ms,
            "batch.size": batch_size,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "on_delivery": on_delivery,
        }
    )


def run(
    mode: str,
    bootstrap: str,
    partitions: int,
    records: list[tuple[bytes, bytes]],
    linger_ms: int,
    batch_size: int,
) -> dict:
    topic = create_topic(bootstrap, partitions, prefix=f"peer-confluent-{mode}")
    failed = [0]
    producer = _producer(bootstrap, linger_ms, batch_size, failed)
    producer.produce(topic, b"{}", b"warmup")
    producer.flush(30)
    cpu0, t0 = _cpu_s(), time.monotonic()
    if mode == "produce":
        produce, poll = producer.produce, producer.poll
        for i, (key, value) in enumerate(records):
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    poll(0.005)
            if i % 1000 == 0:
                poll(0)
    else:
        for i in range(0, len(records), 10_000):
            batch = [{"key": k, "value": v} for k, v in records[i : i + 10_000]]
            producer.produce_batch(topic, batch)
            failed[0] += sum(1 for m in batch if "_error" in m)
            producer.poll(0)
    left = producer.flush(120)
    elapsed, cpu = time.monotonic() - t0, _cpu_s() - cpu0
    landed = end_offsets_total(bootstrap, topic, partitions) - 1  # minus the warm-up record
    n = len(records)
    return {
        "mode": mode,
        "readings": n,
        "landed": landed,
        "lost": n - landed,
        "failed": failed[0] + left,
        "elapsed_s": round(elapsed, 3),
        "readings_per_s": round(landed / elapsed, 1),
        "cpu_s_per_100k": round(cpu / max(1, landed) * 100_000, 3),
    }
