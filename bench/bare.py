"""The same records through a bare aiokafka producer: the ceiling for this client on this machine.

Two ways are measured: ``send`` (one ``AIOKafkaProducer.send()`` per record, the idiomatic use) and
``batch`` (records appended to per-partition ``create_batch()`` builders and handed to ``send_batch()``
over several producers, as the gateway does, minus UDP, parsing, HMAC and bookkeeping). The bare producer
uses aiokafka's own ``create_batch()`` builders (one Python call per record, lz4 at aiokafka's level 9): it is
the ceiling of aiokafka as a user would drive it, not of the gateway's own batches (gateway/batch.py).
"""

from __future__ import annotations

import asyncio
import resource
import time

from aiokafka import AIOKafkaProducer

from gateway.config import KafkaConfig
from gateway.kafka_out import Job, KafkaOut, producer_kwargs


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_send(cfg: KafkaConfig, records: list[tuple[bytes, bytes]]) -> dict:
    producer = AIOKafkaProducer(**producer_kwargs(cfg, "bench-bare-send"))
    await producer.start()
    try:
        await (await producer.send(cfg.topic, b"{}", key=b"warmup"))
        cpu0, t0 = _cpu_s(), time.monotonic()
        futures = [await producer.send(cfg.topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
        elapsed, cpu = time.monotonic() - t0, _cpu_s() - cpu0
    finally:
        await producer.stop()
    return _result("send", len(records), elapsed, cpu)


async def run_batch(cfg: KafkaConfig, records: list[tuple[bytes, bytes]]) -> dict:
    out = KafkaOut(cfg, "bench-bare-batch", aiokafka_batches=True)
    await out.start()
    done = asyncio.Event()
    remaining = [len(records)]
    failed = [0]

    def on_done(job: Job, ok: bool) -> None:
        remaining[0] -= job.count
        failed[0] += 0 if ok else job.count
        if remaining[0] <= 0:
            done.set()

    try:
        cpu0, t0 = _cpu_s(), time.monotonic()
        now_ms = int(time.time() * 1000)
        for i in range(0, len(records), 25):
            chunk = records[i : i + 25]
            key = chunk[0][0]
            job = Job(len(chunk), t0, on_done)
            out.submit(job, key, [(value, now_ms) for _, value in chunk])
            if i % 5000 == 0:
                await asyncio.sleep(0)  # let the producers run, as the gateway's loop would
        await done.wait()
        elapsed, cpu = time.monotonic() - t0, _cpu_s() - cpu0
    finally:
        await out.stop()
    result = _result("batch", len(records), elapsed, cpu)
    result["failed"] = failed[0]
    return result


def _result(mode: str, n: int, elapsed: float, cpu: float) -> dict:
    return {
        "mode": mode,
        "readings": n,
        "elapsed_s": round(elapsed, 3),
        "readings_per_s": round(n / elapsed, 1),
        "cpu_s_per_100k": round(cpu / n * 100_000, 3),
    }
