"""The worker's Kafka side: several aiokafka producers fed with ready-made record batches.

The batches are the gateway's own (:mod:`gateway.batch`: native when ``ibp_native`` is built), filled a
datagram at a time and compressed at the configured level; ``aiokafka_batches=True`` uses aiokafka's own
``create_batch()`` builders instead (the bench's bare-producer ceiling).

aiokafka keeps one produce request in flight per broker connection, and a batch handed over while one is
in flight waits for it; so on a broker that acks slowly (AutoMQ's S3 WAL: hundreds of ms) a single
producer caps at ``partitions x batch_size`` per round trip. Here each worker builds its own batches per
partition and spreads them over several producers, so several requests are in flight at once.

Dispatch is request-aware: only an idle producer (nothing in flight) takes batches, and it takes one ready
batch of every partition that has one (one request). A batch whose linger expired leaves as soon as one of
the first ``producers_per_worker`` producers is idle; while none is, it keeps filling (up to
``batch_size``). So a fast broker sees small batches every ``linger_ms`` and a slow one sees full batches
in few requests, without batches queued behind a request in flight.

The pool grows past that only for full batches: when every base producer is busy and a full batch has
waited ``linger_ms`` for one, one of the extra producers (up to ``max_producers_per_worker``) takes the
ready batches (one request). A full batch waiting means the
broker's round trip, not the linger, bounds the rate (2 producers, 12 partitions and 256 KB batches of
~1,450 readings capped a worker near 77,000 readings/s behind a 250 ms ack). On a fast broker a base
producer is back before a full batch gets that old, so the extras stay idle and requests stay few and
large (extras sent off for any full batch at once cost about 8 % of the no-latency rate in the bench:
more, smaller requests for the broker on the same cores).

A :class:`Job` is one datagram's new readings; its callback fires once every batch holding one of its
records has been acked by Kafka (``ok=True``) or any of them failed (``ok=False``).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from gateway import batch as batch_mod
from gateway.config import KafkaConfig


@dataclass(slots=True, eq=False)
class Job:
    """One datagram's new readings on their way to Kafka."""

    count: int
    received_at: float  # time.monotonic() when the datagram arrived
    on_done: Callable[[Job, bool], None]
    context: object = None
    pending: int = 0  # batches still holding records of this job (incremented as it is appended)
    sealed: bool = False  # every record appended
    failed: bool = False


class _AiokafkaBatch(BatchBuilder):  # type: ignore[misc]  # aiokafka ships no type information
    """aiokafka's own builder with :class:`gateway.batch.Batch`'s ``append_from`` (one call per record)."""

    def append_from(self, key: bytes | None, records: Sequence[tuple[bytes, int]], start: int) -> int:
        append = self.append
        for k in range(start, len(records)):
            value, ts = records[k]
            if append(timestamp=ts, key=key, value=value) is None:
                return k
        return len(records)


@dataclass(slots=True, eq=False)
class _OpenBatch:
    builder: Any  # a gateway.batch.Batch, handed to aiokafka's send_batch() as its builder
    jobs: list[Job] = field(default_factory=list)
    records: int = 0
    timer: asyncio.TimerHandle | None = None
    lingered: bool = False
    full_at: float = 0.0  # loop time it was sealed full (waiting for a producer from then)


def _acks(value: str) -> int | str:
    return "all" if value == "all" else int(value)


def _ssl_context(cfg: KafkaConfig) -> ssl.SSLContext | None:
    if cfg.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=cfg.ssl_cafile, certfile=cfg.ssl_certfile, keyfile=cfg.ssl_keyfile
    )
    return context


def producer_kwargs(cfg: KafkaConfig, client_id: str, linger_ms: int | None = None) -> dict[str, Any]:
    """AIOKafkaProducer arguments for this config (also used by the bench's bare producer).

    KafkaOut passes ``linger_ms=0``: it lingers itself while filling a batch, and a sealed batch should
    leave at once (aiokafka would otherwise wait ``linger_ms`` again and re-check every queued batch).
    """
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": client_id,
        "acks": _acks(cfg.acks),
        "compression_type": None if cfg.compression == "none" else cfg.compression,
        "max_batch_size": cfg.batch_size,
        "linger_ms": cfg.linger_ms if linger_ms is None else linger_ms,
        "max_request_size": cfg.max_request_size,
        "request_timeout_ms": cfg.request_timeout_ms,
        "enable_idempotence": False,
        "security_protocol": cfg.security_protocol,
    }
    context = _ssl_context(cfg)
    if context is not None:
        kwargs["ssl_context"] = context
    if cfg.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = cfg.sasl_password
    return kwargs


class KafkaOut:
    """Per-partition batch building over a pool of producers."""

    def __init__(
        self,
        cfg: KafkaConfig,
        client_id: str,
        on_batch: Callable[[int, float, bool], None] | None = None,
        *,
        aiokafka_batches: bool = False,
    ) -> None:
        self.cfg = cfg
        self.topic = cfg.topic
        self._client_id = client_id
        self._producers: list[AIOKafkaProducer] = []
        self._partitions: list[int] = []
        self._partition_cache: dict[bytes, int] = {}
        self._open: dict[int, _OpenBatch] = {}  # the batch filling, per partition
        self._full: dict[int, deque[_OpenBatch]] = {}  # full batches waiting for a free producer
        self._idle: list[int] = []  # producers with nothing in flight
        self._base = cfg.producers_per_worker
        self._extra_timer: asyncio.TimerHandle | None = None  # re-dispatch once a full batch waited a linger
        self._extra_at = 0.0  # when it fires (loop time)
        self._in_flight: dict[int, int] = {}  # producer -> batches it has in flight
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._linger = cfg.linger_ms / 1000.0
        self._on_batch = on_batch  # (records, seconds, ok) for metrics
        # called once after every batch's jobs are done, so their answers can leave together (handler.settle)
        self.on_settled: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop  # set by start(): batches are only made once started
        self._make_batch: Callable[[], Any]
        if aiokafka_batches:
            compression = batch_mod.CODEC_BITS[cfg.compression]
            self._make_batch = lambda: _AiokafkaBatch(cfg.batch_size, compression)
        else:
            self._make_batch = batch_mod.factory(cfg.batch_size, cfg.compression, cfg.compression_level)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for i in range(max(self.cfg.producers_per_worker, self.cfg.max_producers_per_worker)):
            producer = AIOKafkaProducer(**producer_kwargs(self.cfg, f"{self._client_id}-p{i}", linger_ms=0))
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                await self.stop()
                raise
            self._producers.append(producer)
        self._idle = list(range(len(self._producers)))[::-1]  # pop() takes producer 0 first
        parts = await self._producers[0].partitions_for(self.topic)
        self._partitions = sorted(parts)

    async def stop(self) -> None:
        if self._extra_timer is not None:
            self._extra_timer.cancel()
            self._extra_timer = None
        producers, self._producers = self._producers, []
        for producer in producers:
            await producer.stop()

    @property
    def started(self) -> bool:
        return bool(self._producers)

    def partition_for(self, key: bytes) -> int:
        p = self._partition_cache.get(key)
        if p is None:
            # the Java client's default: murmur2(key) positive, modulo the partition count
            p = self._partitions[(murmur2(key) & 0x7FFFFFFF) % len(self._partitions)]
            if len(self._partition_cache) > 1_000_000:
                self._partition_cache.clear()
            self._partition_cache[key] = p
        return p

    def submit(self, job: Job, key: bytes, records: Sequence[tuple[bytes, int]]) -> None:
        """Append ``records`` ((value, timestamp_ms) each, all with ``key``) for ``job``; never blocks."""
        partition = self.partition_for(key)
        total, start = len(records), 0
        while True:
            batch = self._open.get(partition)
            if batch is None:
                batch = self._new_batch(partition)
            end = batch.builder.append_from(key, records, start)
            if end > start:
                batch.jobs.append(job)
                job.pending += 1
                batch.records += end - start
            elif not batch.records:  # pragma: no cover - the first record of a batch always fits
                raise ValueError("a record does not fit an empty batch")
            if end >= total:
                break
            self._batch_full(partition)
            start = end
        job.sealed = True

    def _new_batch(self, partition: int) -> _OpenBatch:
        batch = _OpenBatch(self._make_batch())
        self._open[partition] = batch
        batch.timer = self._loop.call_later(self._linger, self._linger_expired, partition, batch)
        return batch

    def _linger_expired(self, partition: int, batch: _OpenBatch) -> None:
        batch.timer = None
        batch.lingered = True
        if self._open.get(partition) is batch:
            self._dispatch()

    def _batch_full(self, partition: int) -> None:
        batch = self._open.pop(partition)
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        batch.full_at = self._loop.time()
        self._full.setdefault(partition, deque()).append(batch)
        self._dispatch()

    def _take(self, partition: int) -> _OpenBatch | None:
        """The batch of ``partition`` that may leave now: a full one first, else the open one once lingered."""
        full = self._full.get(partition)
        if full:
            return full.popleft()
        batch = self._open.get(partition)
        if batch is None or not batch.records or not (batch.lingered or self._flushing):
            return None
        del self._open[partition]
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        return batch

    def _dispatch(self) -> None:
        """Give every idle producer one request's worth: one ready batch of each partition that has one.

        aiokafka sends one produce request per connection at a time and a batch added while a request is in
        flight waits for it: handed to a busy producer, a batch would wait a whole broker round trip before
        its own. So only idle producers take batches, all ready partitions at once (one request), and while
        none is idle the open batches keep filling.
        """
        while self._idle:
            busy = len(self._producers) - len(self._idle)
            if busy >= self._base and not self._flushing and not self._full_waited():
                return  # the base producers are busy and no full batch waited a linger: keep filling
            partitions = dict.fromkeys([*self._open, *self._full])  # each once: one batch per partition
            taken = [(p, b) for p in partitions if (b := self._take(p)) is not None]
            if not taken:
                return
            index = self._idle.pop()
            self._in_flight[index] = len(taken)
            for partition, batch in taken:
                task = self._loop.create_task(self._send(index, partition, batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _full_waited(self) -> bool:
        """Whether a full batch has waited ``linger_ms`` for a base producer (then an extra may take it).

        A fast broker frees a base producer sooner, so its full batches never get that old; a slow one
        (AutoMQ's S3 WAL) does not. Until then a timer re-dispatches when the oldest one gets there.
        """
        oldest = min((q[0].full_at for q in self._full.values() if q), default=None)
        if oldest is None:
            return False
        due = oldest + self._linger
        if self._loop.time() >= due:
            return True
        if self._extra_timer is None or self._extra_at > due:  # (uvloop's handles have no when())
            if self._extra_timer is not None:
                self._extra_timer.cancel()
            self._extra_timer, self._extra_at = self._loop.call_at(due, self._extra_due), due
        return False

    def _extra_due(self) -> None:
        self._extra_timer = None
        self._dispatch()

    async def _send(self, index: int, partition: int, batch: _OpenBatch) -> None:
        started = time.monotonic()
        ok = True
        try:
            future = await self._producers[index].send_batch(batch.builder, self.topic, partition=partition)
            await future
        except Exception:  # any produce error: nothing of this batch is acked; devices retransmit
            ok = False
        self._in_flight[index] -= 1
        if self._in_flight[index] == 0:
            self._idle.append(index)  # LIFO: the producers used most stay the ones used
        if self._on_batch is not None:
            self._on_batch(batch.records, time.monotonic() - started, ok)
        for job in batch.jobs:
            if not ok:
                job.failed = True
            job.pending -= 1
            if job.pending == 0 and job.sealed:
                job.on_done(job, not job.failed)
        if self.on_settled is not None:
            self.on_settled()
        self._dispatch()

    def flush_open(self) -> None:
        """From now on send every batch as soon as a producer is free, lingered or not (shutdown)."""
        self._flushing = True
        self._dispatch()

    async def drain(self) -> None:
        """Send every open batch and wait until each one in flight is acked or failed."""
        self.flush_open()
        while self._tasks or any(self._full.values()) or any(b.records for b in self._open.values()):
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:  # pragma: no cover - nothing in flight yet batches waiting: dispatch them
                self.flush_open()
                await asyncio.sleep(0)

    @property
    def batches_in_flight(self) -> int:
        return len(self._tasks)
