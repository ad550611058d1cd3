"""Prometheus metrics of a worker (names fixed by the run contract; see docs/gateway.md).

Workers run prometheus_client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is set by the supervisor
before a worker starts), so the supervisor's single ``/metrics`` endpoint aggregates every worker.
Metric objects are created by :func:`create` (not at import time: in multiprocess mode creating them
opens files).

The hot path never touches prometheus_client directly: in multiprocess mode every ``inc()`` takes a lock,
checks the pid and writes an mmap'ed file (measured 7 us per inc and 16 us per histogram observe on the
shared 2-core machine, about 3 us per reading). Workers count into plain Python numbers
(:class:`LocalCounter`, :class:`LocalGauge`, :class:`LocalHistogram`) and :meth:`WorkerMetrics.flush`
adds the deltas to the real metrics every :data:`FLUSH_INTERVAL_S`.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, fields

from prometheus_client import Counter, Gauge, Histogram

FLUSH_INTERVAL_S = 0.2


class LocalCounter:
    __slots__ = ("flushed", "metric", "value")

    def __init__(self, metric: Counter) -> None:
        self.metric = metric
        self.value: float = 0
        self.flushed: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def flush(self) -> None:
        delta = self.value - self.flushed
        if delta:
            self.metric.inc(delta)
            self.flushed = self.value


class LocalGauge:
    __slots__ = ("flushed", "metric", "value")

    def __init__(self, metric: Gauge) -> None:
        self.metric = metric
        self.value: float = 0
        self.flushed: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value

    def flush(self) -> None:
        if self.value != self.flushed:
            self.metric.set(self.value)
            self.flushed = self.value


class LocalHistogram:
    """Bucket counts and sum kept locally, added to the histogram's own bucket values on flush."""

    __slots__ = ("bounds", "counts", "metric", "total")

    def __init__(self, metric: Histogram) -> None:
        self.metric = metric
        self.bounds = list(metric._upper_bounds)  # prometheus_client keeps +Inf as the last bound
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.total += value
        self.counts[bisect_left(self.bounds, value)] += 1

    def flush(self) -> None:
        if not any(self.counts):
            return
        # the same effect as observe() per value: non-cumulative bucket counts plus the sum
        self.metric._sum.inc(self.total)
        for i, count in enumerate(self.counts):
            if count:
                self.metric._buckets[i].inc(count)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0


DATAGRAM_RESULTS = ("ok", "invalid", "auth_failed", "duplicate", "busy", "legacy")
INVALID_REASONS = (
    "oversized",
    "bad_magic",
    "bad_version",
    "bad_type",
    "truncated",
    "bad_device_id",
    "invalid",
    "malformed_json",
    "seq_regression",
    "legacy_disabled",
)
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 255)
KAFKA_BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000)


@dataclass(frozen=True)
class WorkerMetrics:
    received: LocalCounter
    produced: LocalCounter
    produce_errors: LocalCounter
    active_devices: LocalGauge
    produce_latency: LocalHistogram
    datagrams: dict[str, LocalCounter]
    invalid: dict[str, LocalCounter]
    acks_sent: LocalCounter
    busy_sent: LocalCounter
    auth_fail_sent: LocalCounter
    auth_fail_suppressed: LocalCounter
    inflight: LocalGauge
    batch_readings: LocalHistogram
    kafka_batch_records: LocalHistogram
    ack_latency: LocalHistogram
    duplicates: LocalCounter
    gaps: LocalCounter
    registry_reloads: dict[str, LocalCounter]
    state_write_errors: LocalCounter

    def flush(self) -> None:
        """Publish everything counted since the last flush to the multiprocess metric files."""
        for f in fields(self):
            value = getattr(self, f.name)
            for local in value.values() if isinstance(value, dict) else (value,):
                local.flush()


def _counter(name: str, doc: str) -> LocalCounter:
    return LocalCounter(Counter(name, doc))


def _gauge(name: str, doc: str) -> LocalGauge:
    return LocalGauge(Gauge(name, doc, multiprocess_mode="livesum"))


def _histogram(name: str, doc: str, buckets: tuple[float, ...]) -> LocalHistogram:
    return LocalHistogram(Histogram(name, doc, buckets=buckets))


def create() -> WorkerMetrics:
    datagrams = Counter("iot_datagrams", "UDP datagrams by result", ["result"])
    invalid = Counter("iot_invalid_datagrams", "Rejected datagrams by reason", ["reason"])
    reloads = Counter("iot_registry_reloads", "Key registry reloads by a worker (SIGHUP)", ["result"])
    return WorkerMetrics(
        received=_counter("iot_messages_received", "Readings received in authenticated or legacy datagrams"),
        produced=_counter("iot_messages_produced", "Readings acknowledged by Kafka"),
        produce_errors=_counter("iot_produce_errors", "Readings whose Kafka produce failed (not acked)"),
        active_devices=_gauge("iot_active_devices", "Devices heard from within the active window"),
        produce_latency=_histogram(
            "iot_produce_latency_ms", "Kafka batch produce latency in milliseconds", LATENCY_BUCKETS_MS
        ),
        datagrams={r: LocalCounter(datagrams.labels(result=r)) for r in DATAGRAM_RESULTS},
        invalid={r: LocalCounter(invalid.labels(reason=r)) for r in INVALID_REASONS},
        acks_sent=_counter("iot_acks_sent", "ACK datagrams sent"),
        busy_sent=_counter("iot_busy_sent", "BUSY datagrams sent"),
        auth_fail_sent=_counter("iot_auth_fail_sent", "AUTH_FAIL datagrams sent"),
        auth_fail_suppressed=_counter(
            "iot_auth_fail_suppressed", "AUTH_FAIL answers withheld by the per-address rate limit"
        ),
        inflight=_gauge("iot_inflight_readings", "Readings handed to Kafka, not yet acked"),
        batch_readings=_histogram("iot_batch_readings", "Readings per IBP/1 DATA datagram", BATCH_BUCKETS),
        kafka_batch_records=_histogram(
            "iot_kafka_batch_records", "Records per Kafka produce batch", KAFKA_BATCH_BUCKETS
        ),
        ack_latency=_histogram(
            "iot_ack_latency_ms", "Datagram received to ACK sent, milliseconds", LATENCY_BUCKETS_MS
        ),
        duplicates=_counter(
            "iot_duplicate_readings", "Readings already committed or in flight (not produced again)"
        ),
        gaps=_counter("iot_sequence_gaps", "Datagrams that skipped ahead of the device's high-water mark"),
        registry_reloads={r: LocalCounter(reloads.labels(result=r)) for r in ("ok", "failed")},
        state_write_errors=_counter(
            "iot_state_write_errors", "Failed appends of high-water marks to state.dir (acked anyway)"
        ),
    )
