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

The pool grows past that only for full batches: while every base producer is busy, one of the extra
producers (up to ``max_producers_per_worker``) takes the ready batches (one request) as soon as one is
full. A full batch means the broker's round trip, not the linger, bounds the rate (2 producers, 12
partitions and 256 KB batches of ~1,450 readings capped a worker near 77,000 readings/s behind a 250 ms
ack); lingered batches wait for a base producer, so a broker that is fast next to the linger keeps few
large requests.

A request that leaves takes every other partition's open batch along, however young (the Java client
drains a ready node the same way): the partitions' lingers no longer expire one after the other into a
dozen small requests per ``linger_ms``, each queued behind the last on two producers, but into about one.

Both measured alternating in ``make bench`` (2026-12-07, lz4 level 9, 12 partitions, two runs each):
riding along, 682-685k acked/s against 607-650k before, and at half load an ACK p99 of 85-92 ms against
107-110 ms; then an extra taking a full batch at once, 724-729k acked/s (250 ms broker: 562-568k) against
674-693k (545-555k) when a full batch first waited ``linger_ms`` for a base producer (the rule before,
which had measured 8 % faster without riding along: more, smaller requests for the broker on the same
cores).

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
        self._full.setdefault(partition, deque()).append(batch)
        self._dispatch()

    def _take(self, partition: int) -> _OpenBatch | None:
        """The batch of ``partition`` that may leave now: a full one first, else the open one once lingered."""
        full = self._full.get(partition)
        if full:
            return full.popleft()
        batch = self._open.get(partition)
        if batch is None or not (batch.lingered or self._flushing):
            return None
        return self._take_open(partition)

    def _take_open(self, partition: int) -> _OpenBatch | None:
        """The open batch of ``partition`` whatever its age (it rides along a request that leaves anyway)."""
        batch = self._open.get(partition)
        if batch is None or not batch.records:
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
        its own. So only idle producers take batches, all ready partitions at once (one request) with the
        other partitions' open batches riding along, and while none is idle the open batches keep filling.
        """
        while self._idle:
            busy = len(self._producers) - len(self._idle)
            if busy >= self._base and not self._flushing and not any(self._full.values()):
                return  # the base producers are busy and no batch is full: keep filling
            partitions = dict.fromkeys([*self._open, *self._full])  # each once: one batch per partition
            taken = [(p, b) for p in partitions if (b := self._take(p)) is not None]
            if not taken:
                return
            have = {p for p, _ in taken}  # and the others' open batches ride along (module docstring)
            taken += [(p, b) for p in list(self._open) if p not in have and (b := self._take_open(p))]
            index = self._idle.pop()
            self._in_flight[index] = len(taken)
            for partition, batch in taken:
                task = self._loop.create_task(self._send(index, partition, batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

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
