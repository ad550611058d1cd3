"""The auditor: read a run's records from Kafka and account for every (device, sequence).

Records of other runs (payload ``run`` differs) are skipped and counted. With the run's expected set
(the agents' results: per device the sequences generated, the outage range and what the device dropped
on overflow) every expected reading is delivered or missing; duplicates, out-of-order records and
unexpected sequences are counted too. From Kafka timestamps it computes readings/s per second,
end-to-end latency (device time -> Kafka timestamp; LogAppendTime topics give the broker's append
time) with HdrHistogram, peak rate, drain time and recovery time, then evaluates the scenario's SLOs.
"""

from __future__ import annotations

import asyncio
import json
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from simulator.audit import gateway_metrics
from simulator.audit.expectations import Expectation
from simulator.audit.result import AuditResult
from simulator.scenario import Slos

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


def _marker(markers: list[dict], event: str, pick=min) -> float | None:
    ts = [m.get("at", m["ts"]) for m in markers if m["event"] == event]  # "at": the exact phase edge
    return pick(ts) if ts else None


def phases_from(agent_results: list[dict]) -> dict[str, float | None]:
    """Phase markers of the whole run (unix seconds) from every agent's markers."""
    markers = [m for r in agent_results for m in r.get("markers", [])]
    return {
        "run_start": _marker(markers, "run_start"),
        "outage_start": _marker(markers, "outage_start"),
        "flush_start": _marker(markers, "flush_start"),
        "drained": _marker(markers, "drained", max),
        "generation_stop": _marker(markers, "generation_stop", max),
        "run_end": _marker(markers, "run_end", max),
    }


def account(col: Collected, agent_results: list[dict]) -> dict[str, Any]:
    """Delivered / missing / duplicates / unexpected against the agents' expected sets."""
    expected: dict[str, Expectation] = {}
    for r in agent_results:
        for row in r.get("expected", []):
            e = Expectation.from_row(row)
            expected[e.device] = e
    delivered = missing = duplicates = unexpected = dropped = 0
    buffered_expected = buffered_delivered = 0
    missing_examples: list[str] = []
    duplicate_times_ms: list[int] = []  # when each later copy of a reading landed in Kafka
    for dev, e in expected.items():
        first, end, out_first, out_end, drops = e.first_seq, e.next_seq, e.outage_first, e.outage_end, e.drops
        dropped_set = {s for a, b in drops for s in range(a, b + 1)}
        dropped += len(dropped_set)
        got = sorted(zip(col.seqs.get(dev, ()), col.stamps.get(dev, ()), strict=True))
        uniq: list[int] = []
        for s, ts in got:
            if uniq and uniq[-1] == s:
                duplicates += 1
                duplicate_times_ms.append(ts)
            else:
                uniq.append(s)
        present = set(uniq)
        for s in uniq:
            if not first <= s < end or s in dropped_set:
                unexpected += 1
        want = [s for s in range(first, end) if s not in dropped_set]
        d = sum(1 for s in want if s in present)
        delivered += d
        if d < len(want):
            missing += len(want) - d
            if len(missing_examples) < 10:
                gone = [s for s in want if s not in present]
                missing_examples.append(f"{dev}: {len(gone)} missing, first {gone[:3]}")
        if out_first >= 0 and out_end > out_first:
            outage = [s for s in range(out_first, out_end) if s not in dropped_set]
            buffered_expected += len(outage)
            buffered_delivered += sum(1 for s in outage if s in present)
    for dev, seqs in col.seqs.items():
        if dev not in expected:
            unexpected += len(seqs)
    if not expected:  # no expectation: account against what arrived (first..last per device)
        for seqs in col.seqs.values():
            s = sorted(seqs)
            u = sorted(set(s))
            duplicates += len(s) - len(u)
            delivered += len(u)
            missing += (u[-1] - u[0] + 1) - len(u)
    return {
        "expected": sum(e.generated for e in expected.values()) - dropped if expected else None,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "dropped_by_devices": dropped,
        "buffered_expected": buffered_expected,
        "buffered_delivered": buffered_delivered,
        "missing_examples": missing_examples,
        "duplicate_times_ms": sorted(duplicate_times_ms),
    }


# Why a fault can leave a second copy of a reading in Kafka (shown next to the duplicates it explains).
DUPLICATE_CAUSES = {
    "gateway-restart": (
        "readings Kafka had committed whose ACK died with the gateway process: the device retransmitted them "
        "and the new process, which starts without the device's high-water mark, produced them again"
    ),
    "broker-restart": (
        "produce requests the broker wrote but whose answer was lost when it stopped: the gateway reported a "
        "failure (no ACK), the device retransmitted, and the reading was produced again"
    ),
    "broker-kill": (
        "produce requests the killed broker had written (to its page cache or the log) whose answer never left "
        "it: the gateway saw a failure or a timeout (no ACK), the device retransmitted, the reading was produced again"
    ),
    "disk-full": (
        "none expected: the run stops when its agent cannot journal, before it sends what it could not keep"
    ),
    "link-impair": (
        "ACKs lost or late on the impaired link make devices retransmit; the gateway answers a retransmission "
        "of a committed reading without producing it again, so copies here come from a gateway-side cause"
    ),
    "partition": (
        "ACKs cut off by the partition make devices retransmit; committed readings are acknowledged again "
        "without a second produce, so copies here come from a gateway-side cause"
    ),
    "agent-reboot": (
        "ACKs that arrived after the agent's last journal sync were lost with the host: the restored devices "
        "resend those readings and the gateway acknowledges them as replays (a second copy only if it restarted too)"
    ),
}
DUPLICATE_WINDOW_S = 30.0  # a fault explains copies that land from its start until this long after its end


def attribute_duplicates(faults: list[dict[str, Any]], duplicate_times_ms: list[int]) -> dict[str, Any]:
    """Give every fault the duplicates that landed in its window; the rest are unexplained."""
    explained = [0] * len(faults)
    unexplained = 0
    for ts in duplicate_times_ms:
        t = ts / 1000
        hit = None
        for i, f in enumerate(faults):
            start = f.get("started_at") or f.get("planned_at")
            end = f.get("ended_at") or start
            if start is not None and start - 1 <= t <= end + DUPLICATE_WINDOW_S:
                hit = i
                break
        if hit is None:
            unexplained += 1
        else:
            explained[hit] += 1
    rows = []
    for f, n in zip(faults, explained, strict=True):
        rows.append(
            {
                **f,
                "duplicates": n,
                "duplicate_cause": DUPLICATE_CAUSES.get(f.get("action", ""), "") if n else "",
            }
        )
    return {"faults": rows, "unexplained_duplicates": unexplained}


def _pct(h: HdrHistogram) -> dict[str, float]:
    if h.get_total_count() == 0:
        return {"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": 0}
    return {
        "p50": h.get_value_at_percentile(50),
        "p90": h.get_value_at_percentile(90),
        "p99": h.get_value_at_percentile(99),
        "p999": h.get_value_at_percentile(99.9),
        "max": h.get_max_value(),
    }


def timeline(col: Collected) -> list[dict[str, Any]]:
    """Per second (Kafka time): readings appended, backlog (generated - appended), latency p50/p99."""
    if col.first_ts_ms is None:
        return []
    lo = min(min(col.generated_per_second, default=0), col.first_ts_ms // 1000)
    hi = col.last_ts_ms // 1000  # type: ignore[operator]
    out, gen_cum, app_cum = [], 0, 0
    for sec in range(lo, hi + 1):
        gen_cum += col.generated_per_second.get(sec, 0)
        app = col.per_second.get(sec, 0)
        app_cum += app
        h = col.latency_per_second.get(sec)
        out.append(
            {
                "t": sec,
                "rate": app,
                "backlog": max(0, gen_cum - app_cum),
                "p50_ms": h.get_value_at_percentile(50) if h else None,
                "p99_ms": h.get_value_at_percentile(99) if h else None,
            }
        )
    return out


ZOOM_BEFORE_S = 1.0  # the flush zoom starts this long before the flush
ZOOM_AFTER_S = 1.0  # ... and ends this long after the backlog drained
ZOOM_MAX_S = 120.0  # at most this long (1,200 points): a drain that takes minutes reads fine per second


def flush_zoom(col: Collected, flush: float | None, drained_at: float | None) -> list[dict[str, float | int]]:
    """The flush window at 100 ms: ``t`` (unix s, bucket start), ``rate`` (readings/s over the bucket),
    ``backlog`` (generated, not yet appended: counted by device time against Kafka time).

    The window runs from ``ZOOM_BEFORE_S`` before the flush to ``ZOOM_AFTER_S`` after the drain (or to
    the last record when it never drained), capped at ``ZOOM_MAX_S``. Empty without a flush or records.
    """
    if not flush or col.first_ts_ms is None or col.last_ts_ms is None:
        return []
    start = int((flush - ZOOM_BEFORE_S) * 10)
    end_s = (drained_at + ZOOM_AFTER_S) if drained_at else col.last_ts_ms / 1000
    end = min(int(end_s * 10), start + int(ZOOM_MAX_S * 10), col.last_ts_ms // 100)
    if end < start:
        return []
    generated = sum(n for b, n in col.generated_per_100ms.items() if b < start)
    appended = sum(n for b, n in col.per_100ms.items() if b < start)
    out: list[dict[str, float | int]] = []
    for b in range(start, end + 1):
        generated += col.generated_per_100ms.get(b, 0)
        rate = col.per_100ms.get(b, 0)
        appended += rate
        out.append({"t": round(b / 10, 1), "rate": rate * 10, "backlog": max(0, generated - appended)})
    return out


def evaluate(
    col: Collected,
    agent_results: list[dict],
    slos: Slos,
    run_id: str,
    extra_errors: dict[str, int] | None = None,
    faults: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The audit JSON: counts at top level (``delivered``, ``missing``, ``duplicates`` are integers).

    ``faults``: the faults injected during the run (``faults.json`` of a distributed run); each gets the
    duplicates that landed in its window and the reason such copies appear.
    """
    acc = account(col, agent_results)
    phases = phases_from(agent_results)
    tl = timeline(col)
    flush = phases["flush_start"]
    outage = phases["outage_start"]
    peak = max((p["rate"] for p in tl), default=0)
    peak_flush = max((p["rate"] for p in tl if flush and p["t"] >= int(flush)), default=0)
    drained, drain_s = drain_time(col, acc, flush)
    baseline = recovery_s = None
    if outage and col.baseline.get_total_count():
        baseline = col.baseline.get_value_at_percentile(99)
    if flush and baseline is not None:
        threshold = max(2 * baseline, baseline + 100)
        after = [p for p in tl if p["t"] >= int(flush) and p["p99_ms"] is not None]
        ok_from = None
        for p in after:
            if p["p99_ms"] <= threshold:
                ok_from = p["t"] if ok_from is None else ok_from
            else:
                ok_from = None
        if ok_from is not None:
            recovery_s = round(max(0.0, ok_from - flush), 3)
    counters = [r.get("counters", {}) for r in agent_results]
    errors = {
        "auth_fail": sum(c.get("auth_fail", 0) for c in counters),
        "bad_answers": sum(c.get("bad_answers", 0) for c in counters),
        "send_errors": sum(c.get("send_errors", 0) for c in counters),
        # drop-oldest leaves numbered gaps (acc); drop-newest refuses readings before numbering them
        "dropped_by_devices": max(
            acc["dropped_by_devices"], sum(c.get("dropped_overflow", 0) for c in counters)
        ),
        "unexpected_records": acc["unexpected"],
        "unparseable_records": col.unparseable,
        **gateway_metrics.error_counts(gateway_refusals(agent_results)),
        **(extra_errors or {}),
    }
    n_errors = sum(errors.values())
    audit: dict[str, Any] = {
        "run_id": run_id,
        "delivered": int(acc["delivered"]),
        "missing": int(acc["missing"]),
        "duplicates": int(acc["duplicates"]),
        "out_of_order": col.out_of_order,
        "expected": acc["expected"],
        "unexpected": acc["unexpected"],
        "buffered_expected": acc["buffered_expected"],
        "buffered_delivered": acc["buffered_delivered"],
        "records": col.records,
        "skipped_other_runs": col.skipped_other_runs,
        "devices": len(col.seqs),
        "timestamp_type": col.timestamp_type,
        "latency_ms": _pct(col.latency),
        "negative_latency_records": col.negative_latency,
        "peak_rate": peak,
        "peak_rate_during_flush": peak_flush,
        "drain_time_s": drain_s,
        "drained": drained,
        "baseline_p99_ms": baseline,
        "recovery_time_s": recovery_s,
        "errors": errors,
        "phases": phases,
        "missing_examples": acc["missing_examples"],
        "agents": len(agent_results),
        "agent_restarts": [
            {"agent_index": r.get("agent_index"), **m}
            for r in agent_results
            for m in r.get("markers", [])
            if m.get("event") == "agent_restart"
        ],
        **attribute_duplicates(faults or [], acc["duplicate_times_ms"]),
        "failures": [
            {"agent_index": r.get("agent_index"), "failure": r["failure"]}
            for r in agent_results
            if r.get("status") == "failed" and r.get("failure")
        ],
    }
    audit["slos"] = run_verdicts(audit["failures"]) + slo_verdicts(audit, slos, n_errors)
    if faults:
        audit["slos"].append(fault_verdict(audit["faults"]))
    audit["verdict"] = "PASS" if all(s["pass"] for s in audit["slos"]) else "FAIL"
    audit["reasons"] = [s["reason"] for s in audit["slos"] if not s["pass"]]
    audit["timeline"] = tl
    audit["flush_timeline_100ms"] = flush_zoom(
        col, flush, flush + drain_s if flush and drain_s is not None else None
    )
    return AuditResult.model_validate(audit).to_json()  # checks the stable keys' types, keeps the order


def drain_time(col: Collected, acc: dict[str, Any], flush: float | None) -> tuple[bool | None, float | None]:
    """(drained, seconds from the flush until the last reading generated before it was in Kafka).

    A drain happened only when every reading buffered during the outage reached Kafka: otherwise the
    last pre-flush reading that did arrive may even predate the flush, and "0.0 s" would read as an
    instant drain of a backlog that never drained. (None, None): no flush, nothing to drain.
    """
    if not flush:
        return None, None
    if acc["buffered_delivered"] < acc["buffered_expected"]:
        return False, None
    if not col.pre_flush_last_append_ms:
        return None, None
    return True, round(max(0.0, col.pre_flush_last_append_ms / 1000 - flush), 3)


def gateway_refusals(agent_results: list[dict]) -> dict[str, int]:
    """The gateway's refused datagrams by reason during the run, as the runs that read its /metrics saw them."""
    total: dict[str, int] = defaultdict(int)
    for r in agent_results:
        for reason, n in (r.get("gateway_refusals") or {}).items():
            total[reason] += int(n)
    return dict(total)


def run_verdicts(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run that stopped itself (its devices got no answer from the gateway) fails, saying why."""
    return [
        {"slo": "run_completed", "pass": False, "reason": f"agent {f['agent_index']}: {f['failure']}"}
        for f in failures
    ]


def slo_verdicts(a: dict[str, Any], slos: Slos, n_errors: int) -> list[dict[str, Any]]:
    out = []
    if slos.all_delivered:
        ok = a["missing"] == 0 and a["delivered"] > 0
        exp = a["expected"] if a["expected"] is not None else a["delivered"] + a["missing"]
        out.append(
            {
                "slo": "all_delivered",
                "pass": ok,
                "reason": f"{a['delivered']} of {exp} readings delivered, {a['missing']} missing"
                f" ({a['buffered_delivered']} of {a['buffered_expected']} buffered during the outage)",
            }
        )
    peak = a["peak_rate_during_flush"] if a["phases"]["flush_start"] else a["peak_rate"]
    out.append(
        {
            "slo": "min_peak_rate",
            "pass": peak >= slos.min_peak_rate,
            "reason": f"peak {peak} readings/s during the flush (need >= {slos.min_peak_rate:g})",
        }
    )
    rec = a["recovery_time_s"]
    if a["phases"]["flush_start"] and slos.check_recovery:
        out.append(
            {
                "slo": "recovery_within_s",
                "pass": rec is not None and rec <= slos.recovery_within_s,
                "reason": (
                    f"latency back to baseline {rec:.1f} s after the flush started (need <= {slos.recovery_within_s:g} s)"
                    if rec is not None
                    else "latency never came back to its pre-outage baseline (or no baseline measured)"
                ),
            }
        )
    out.append(
        {
            "slo": "max_errors",
            "pass": n_errors <= slos.max_errors,
            "reason": f"{n_errors} errors {a['errors']} (allowed {slos.max_errors})",
        }
    )
    return out


def fault_verdict(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """A run with faults proves something only if every fault really happened: each logged its start and end."""
    bad = [
        f"{f.get('label')}: {f.get('error') or 'no start/end in its log'}"
        for f in faults
        if f.get("error") or f.get("started_at") is None or f.get("ended_at") is None
    ]
    done = len(faults) - len(bad)
    return {
        "slo": "faults_injected",
        "pass": not bad,
        "reason": f"{done} of {len(faults)} faults injected and ended"
        + (f" ({'; '.join(bad)})" if bad else ""),
    }
