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
        self.metric, self.value, self.flushed = metric, 0, 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def flush(self) -> None:
        delta = self.value - self.flushed
        if delta:
            self.metric.inc(delta)
            self.flushed = self.value


class LocalGauge(LocalCounter):
    __slots__ = ()

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


def create() -> WorkerMetrics:
    datagrams = Counter("iot_datagrams", "UDP datagrams by result", ["result"])
    invalid = Counter("iot_invalid_datagrams", "Rejected datagrams by reason", ["reason"])
    reloads = Counter("iot_registry_reloads", "Key registry reloads by a worker (SIGHUP)", ["result"])
    return _wrap(
        received=Counter("iot_messages_received", "Readings received in authenticated or legacy datagrams"),
        produced=Counter("iot_messages_produced", "Readings acknowledged by Kafka"),
        produce_errors=Counter("iot_produce_errors", "Readings whose Kafka produce failed (not acked)"),
        active_devices=Gauge(
            "iot_active_devices", "Devices heard from within the active window", multiprocess_mode="livesum"
        ),
        produce_latency=Histogram(
            "iot_produce_latency_ms",
            "Kafka batch produce latency in milliseconds",
            buckets=LATENCY_BUCKETS_MS,
        ),
        datagrams={r: LocalCounter(datagrams.labels(result=r)) for r in DATAGRAM_RESULTS},
        invalid={r: LocalCounter(invalid.labels(reason=r)) for r in INVALID_REASONS},
        acks_sent=Counter("iot_acks_sent", "ACK datagrams sent"),
        busy_sent=Counter("iot_busy_sent", "BUSY datagrams sent"),
        auth_fail_sent=Counter("iot_auth_fail_sent", "AUTH_FAIL datagrams sent"),
        auth_fail_suppressed=Counter(
            "iot_auth_fail_suppressed", "AUTH_FAIL answers withheld by the per-address rate limit"
        ),
        inflight=Gauge(
            "iot_inflight_readings", "Readings handed to Kafka, not yet acked", multiprocess_mode="livesum"
        ),
        batch_readings=Histogram(
            "iot_batch_readings", "Readings per IBP/1 DATA datagram", buckets=BATCH_BUCKETS
        ),
        kafka_batch_records=Histogram(
            "iot_kafka_batch_records",
            "Records per Kafka produce batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000),
        ),
        ack_latency=Histogram(
            "iot_ack_latency_ms", "Datagram received to ACK sent, milliseconds", buckets=LATENCY_BUCKETS_MS
        ),
        duplicates=Counter(
            "iot_duplicate_readings", "Readings already committed or in flight (not produced again)"
        ),
        gaps=Counter("iot_sequence_gaps", "Datagrams that skipped ahead of the device's high-water mark"),
        registry_reloads={r: LocalCounter(reloads.labels(result=r)) for r in ("ok", "failed")},
        state_write_errors=Counter(
            "iot_state_write_errors", "Failed appends of high-water marks to state.dir (acked anyway)"
        ),
    )


def _wrap(**metrics: object) -> WorkerMetrics:
    wrapped: dict[str, object] = {}
    for name, metric in metrics.items():
        if isinstance(metric, dict):
            wrapped[name] = metric
        elif isinstance(metric, Histogram):
            wrapped[name] = LocalHistogram(metric)
        elif isinstance(metric, Gauge):
            wrapped[name] = LocalGauge(metric)
        else:
            wrapped[name] = LocalCounter(metric)
    return WorkerMetrics(**wrapped)
