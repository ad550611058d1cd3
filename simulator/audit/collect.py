"""Reading one run's records back from Kafka into ``Collected``: the raw material of the audit.

One job: consume. ``consume`` reads the topic's partitions up to their end offsets at call time (from
``since_ms`` on, by offsets-for-times, when given) and ``_one`` keeps each record of this run: its
(device, sequence) and Kafka timestamp, out-of-order sequences, counts per second and per 100 ms by
Kafka and by device time, and end-to-end latency histograms. Apart from the accounting and the
verdicts because it is the only part that talks to Kafka (aiokafka, imported when called) and the one
the virtual-device tests use on its own.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LAT_MAX_MS = 3_600_000


@dataclass
class Collected:
    """What the consumer gathered for one run (raw material of the audit)."""

    seqs: dict[str, array] = field(default_factory=lambda: defaultdict(lambda: array("Q")))
    # Kafka timestamp (ms) of each record, parallel to ``seqs``: when a duplicate copy landed
    stamps: dict[str, array] = field(default_factory=lambda: defaultdict(lambda: array("Q")))
    out_of_order: int = 0
    records: int = 0
    skipped_other_runs: int = 0
    unparseable: int = 0
    negative_latency: int = 0
    timestamp_type: str = "unknown"
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    generated_per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # the same two counts per 100 ms: a flush drains in a second or two, one bar of the per-second view
    per_100ms: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    generated_per_100ms: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, LAT_MAX_MS, 3))
    latency_per_second: dict[int, HdrHistogram] = field(default_factory=dict)
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    pre_flush_last_append_ms: int = 0
    baseline: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, LAT_MAX_MS, 3))


async def consume(
    bootstrap: str,
    topic: str,
    run_id: str,
    flush_start_ms: int | None = None,
    outage_start_ms: int | None = None,
    stall_s: float = 60.0,
    since_ms: int | None = None,
) -> Collected:
    """Read the topic up to its end offsets at call time; keep this run's records.

    ``since_ms``: start each partition at its first record stamped at or after this time (Kafka's
    offsets-for-times) instead of at the beginning. Without it the audit re-reads the topic's whole
    history on every run: on a long-lived topic (the soak's, a cluster with days of retention) each audit
    takes longer than the last. ``None``: from the beginning.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaConnectionError

    col = Collected()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
    )
    try:
        await consumer.start()
    except KafkaConnectionError as exc:
        await consumer.stop()
        # An OSError: `python -m simulator audit` prints it as one line and exits 1 (no traceback).
        raise ConnectionError(
            f"cannot reach Kafka at {bootstrap} ({exc}): run the audit on a host that reaches the brokers' "
            "client port (ansible/burst.yml runs it on burst_control_host, the monitoring host by default)"
        ) from None
    try:
        parts = await consumer._client.fetch_all_metadata()  # aiokafka has no public call for this
        pids = parts.partitions_for_topic(topic)
        if not pids:
            raise RuntimeError(f"topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(pids)]
        consumer.assign(tps)
        skip: set[TopicPartition] = set()
        if since_ms is None:
            await consumer.seek_to_beginning(*tps)
        else:
            starts = await consumer.offsets_for_times({tp: since_ms for tp in tps})
            for tp, found in starts.items():
                if found is None:  # every record there is older: none of this run's
                    skip.add(tp)
                else:
                    consumer.seek(tp, found.offset)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if ends[tp] > 0 and tp not in skip}
        needle = run_id.encode()  # cheap pre-filter; the parsed payload decides
        last_seq: dict[str, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + stall_s
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=20000)
            if not batch:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"audit: partitions {sorted(tp.partition for tp in remaining)} stalled"
                    )
                continue
            deadline = loop.time() + stall_s
            for tp, records in batch.items():
                for rec in records:
                    _one(col, rec, needle, run_id, last_seq, flush_start_ms, outage_start_ms)
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        # a partition whose position already reached its end without records
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    finally:
        await consumer.stop()
    return col


def _one(
    col: Collected,
    rec: Any,
    needle: bytes,
    run_id: str,
    last_seq: dict[str, int],
    flush_ms: int | None,
    outage_ms: int | None,
) -> None:
    value = rec.value
    if needle not in value:
        col.skipped_other_runs += 1
        return
    try:
        obj = json.loads(value)
        payload = obj["payload"]
        if payload.get("run") != run_id:
            col.skipped_other_runs += 1
            return
        dev = obj["device_id"]
        seq = int(obj["seq"])
        dts = int(obj["device_ts_ms"])
    except (ValueError, KeyError, TypeError, AttributeError):
        col.unparseable += 1
        return
    col.records += 1
    col.timestamp_type = "LogAppendTime" if rec.timestamp_type == 1 else "CreateTime"
    kts = int(rec.timestamp)
    col.seqs[dev].append(seq)
    col.stamps[dev].append(max(kts, 0))
    prev = last_seq.get(dev)
    if prev is not None and seq < prev:
        col.out_of_order += 1
    else:
        last_seq[dev] = seq
    sec = kts // 1000
    col.per_second[sec] += 1
    col.generated_per_second[dts // 1000] += 1
    col.per_100ms[kts // 100] += 1
    col.generated_per_100ms[dts // 100] += 1
    col.first_ts_ms = kts if col.first_ts_ms is None else min(col.first_ts_ms, kts)
    col.last_ts_ms = kts if col.last_ts_ms is None else max(col.last_ts_ms, kts)
    lat = kts - dts
    if lat < 0:
        col.negative_latency += 1
        lat = 0
    lat = min(max(lat, 1), LAT_MAX_MS)
    col.latency.record_value(lat)
    h = col.latency_per_second.get(sec)
    if h is None:
        h = col.latency_per_second[sec] = HdrHistogram(1, LAT_MAX_MS, 2)
    h.record_value(lat)
    if outage_ms is not None and dts < outage_ms - 1000:
        col.baseline.record_value(lat)
    if flush_ms is not None and dts < flush_ms:
        col.pre_flush_last_append_ms = max(col.pre_flush_last_append_ms, kts)
