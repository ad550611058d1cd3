"""Prometheus metrics of a worker (names fixed by the run contract; see docs/gateway.md).

Workers run prometheus_client in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is set by the supervisor
before a worker starts), so the supervisor's single ``/metrics`` endpoint aggregates every worker.
Metric objects are created by :func:`create` (not at import time: in multiprocess mode creating them
opens files).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

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
    received: Counter
    produced: Counter
    produce_errors: Counter
    active_devices: Gauge
    produce_latency: Histogram
    datagrams: dict[str, Counter]
    invalid: dict[str, Counter]
    acks_sent: Counter
    busy_sent: Counter
    auth_fail_sent: Counter
    auth_fail_suppressed: Counter
    inflight: Gauge
    batch_readings: Histogram
    kafka_batch_records: Histogram
    ack_latency: Histogram
    duplicates: Counter
    gaps: Counter


def create() -> WorkerMetrics:
    datagrams = Counter("iot_datagrams", "UDP datagrams by result", ["result"])
    invalid = Counter("iot_invalid_datagrams", "Rejected datagrams by reason", ["reason"])
    return WorkerMetrics(
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
        datagrams={r: datagrams.labels(result=r) for r in DATAGRAM_RESULTS},
        invalid={r: invalid.labels(reason=r) for r in INVALID_REASONS},
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
    )
