"""KafkaOut's dispatch policy (gateway/kafka_out.py): which producer takes which batch, and when.

What is under test is the timing of acks, so the producers here are stand-ins whose ``send_batch()`` acks
after a chosen delay (the real aiokafka producer against a real broker, fast and 250 ms slow, is what
``make bench`` measures; the gateway's end-to-end tests run this code against a real broker). The policy:
lingered batches wait for one of the first ``producers_per_worker`` producers; the extra ones, up to
``max_producers_per_worker``, take only full batches while those are busy, so a slow broker gets more
requests in flight while a fast one keeps few large ones; a request that leaves takes the other
partitions' open batches along.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.config import KafkaConfig
from gateway.kafka_out import Job, KafkaOut


class SlowProducer:
    """Acks every batch ``delay`` seconds after it was handed over; counts what it took."""

    def __init__(self, delay: float, tracker: dict[str, int]) -> None:
        self.delay = delay
        self.tracker = tracker
        self.batches = 0
        self.sent: list[tuple[int, float]] = []  # (partition, loop time) of every batch handed over

    async def send_batch(self, builder, topic: str, partition: int) -> asyncio.Future[None]:
        self.batches += 1
        self.sent.append((partition, asyncio.get_running_loop().time()))
        self.tracker["now"] += 1
        self.tracker["peak"] = max(self.tracker["peak"], self.tracker["now"])
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def ack() -> None:
            self.tracker["now"] -= 1
            future.set_result(None)

        asyncio.get_running_loop().call_later(self.delay, ack)
        return future


def kafka_out(
    base: int, extra: int, delay: float, batch_size: int = 4096, partitions: int = 2, linger_ms: int = 5
):
    cfg = KafkaConfig(
        batch_size=batch_size, linger_ms=linger_ms, producers_per_worker=base, max_producers_per_worker=extra
    )
    out = KafkaOut(cfg, "test")
    tracker = {"now": 0, "peak": 0}
    out._loop = asyncio.get_running_loop()
    out._producers = [SlowProducer(delay, tracker) for _ in range(max(base, extra))]
    out._idle = list(range(len(out._producers)))[::-1]
    out._partitions = list(range(partitions))
    return out, tracker


async def submit(out: KafkaOut, jobs: int, records_per_job: int, value: bytes, done: list[bool]) -> None:
    for i in range(jobs):
        job = Job(count=records_per_job, received_at=0.0, on_done=lambda _job, ok: done.append(ok))
        out.submit(
            job, f"dev-{i % 8}".encode(), [(value, 1_700_000_000_000 + k) for k in range(records_per_job)]
        )
        await asyncio.sleep(0)  # datagrams arrive one loop turn apart


def test_full_batches_on_a_slow_broker_use_the_extra_producers() -> None:
    asyncio.run(_full_batches_on_a_slow_broker_use_the_extra_producers())


async def _full_batches_on_a_slow_broker_use_the_extra_producers() -> None:
    out, tracker = kafka_out(base=1, extra=4, delay=0.2, batch_size=16384)
    done: list[bool] = []
    await submit(out, jobs=400, records_per_job=10, value=b"x" * 100, done=done)  # ~400 KB: many full batches
    await out.drain()
    assert done == [True] * 400
    used = [p.batches for p in out._producers]
    assert tracker["peak"] > 1, f"one request at a time: {used}"
    assert sum(1 for n in used if n) > 1, f"only the base producer took batches: {used}"


def test_a_request_takes_the_other_partitions_open_batches_along() -> None:
    asyncio.run(_a_request_takes_the_other_partitions_open_batches_along())


async def _a_request_takes_the_other_partitions_open_batches_along() -> None:
    out, _ = kafka_out(base=1, extra=1, delay=0.002, partitions=4, linger_ms=60, batch_size=1 << 20)
    keys: dict[int, bytes] = {}
    for i in range(100):  # two devices whose records go to different partitions
        keys.setdefault(out.partition_for(f"dev-{i}".encode()), f"dev-{i}".encode())
    (pa, a), (pb, b) = list(keys.items())[:2]
    loop = asyncio.get_running_loop()
    done: list[bool] = []

    def job() -> Job:
        return Job(count=1, received_at=0.0, on_done=lambda _job, ok: done.append(ok))

    t_a = loop.time()
    out.submit(job(), a, [(b"first", 1_700_000_000_000)])
    await asyncio.sleep(0.03)
    t_b = loop.time()
    out.submit(job(), b, [(b"second", 1_700_000_000_001)])
    await asyncio.sleep(0.1)
    assert done == [True, True]
    sent = dict(out._producers[0].sent)
    assert set(sent) == {pa, pb}, out._producers[0].sent  # both on the base producer
    assert sent[pa] - t_a >= 0.055, "the first batch left before its linger"
    assert sent[pb] - t_b < 0.045, "the second batch waited its own linger instead of riding along"
    assert abs(sent[pa] - sent[pb]) < 0.005, "not one request"
    await out.drain()


def test_lingered_batches_wait_for_the_base_producers() -> None:
    asyncio.run(_lingered_batches_wait_for_the_base_producers())


async def _lingered_batches_wait_for_the_base_producers() -> None:
    # records that never fill a batch: every batch leaves by linger, so the extras must stay idle
    out, tracker = kafka_out(base=1, extra=4, delay=0.05, batch_size=1 << 20)
    done: list[bool] = []
    for _ in range(5):
        await submit(out, jobs=20, records_per_job=5, value=b"y" * 50, done=done)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # every batch lingered out and acked (drain() would use any producer: shutdown)
    assert done == [True] * 100
    assert [p.batches > 0 for p in out._producers] == [True, False, False, False]
    assert tracker["peak"] <= len(out._partitions)  # one request (a batch per partition) at a time
    await out.drain()


def test_base_producers_alone_when_max_is_not_above_them() -> None:
    asyncio.run(_base_producers_alone_when_max_is_not_above_them())


async def _base_producers_alone_when_max_is_not_above_them() -> None:
    out, tracker = kafka_out(
        base=2, extra=1, delay=0.1, batch_size=16384
    )  # max below base: base wins, no extras
    assert len(out._producers) == 2
    done: list[bool] = []
    await submit(out, jobs=200, records_per_job=10, value=b"z" * 100, done=done)
    await out.drain()
    assert done == [True] * 200
    assert tracker["peak"] <= 2 * len(out._partitions)


@pytest.mark.parametrize("field", ["producers_per_worker", "max_producers_per_worker"])
def test_producer_counts_are_checked(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        KafkaConfig(**{field: 0})
