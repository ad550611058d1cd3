"""The auditor: read a run's records from Kafka and account for every (device, sequence).

Records of other runs (payload ``run`` differs) are skipped and counted. With the run's expected set
(the agents' results: per device the sequences generated, the outage range and what the device dropped
on overflow) every expected reading is delivered or missing; duplicates, out-of-order records and
unexpected sequences are counted too. From Kafka timestamps it computes readings/s per second,
end-to-end latency (device time -> Kafka timestamp; LogAppendTime topics give the broker's append
time) with HdrHistogram, peak rate, drain time and recovery time, then evaluates the scenario's SLOs.

The parts, each in its own module: reading the records from Kafka (collect.py), accounting against
the expected set and the faults (accounting.py), the per-second timeline, the 100 ms flush zoom and
the drain (timeline.py), the SLO verdicts (verdicts.py). This module assembles audit.json from them
(``evaluate``); every name stays importable from here (``from simulator.audit import auditor``).
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from simulator.audit import gateway_metrics
from simulator.audit.accounting import (
    DUPLICATE_CAUSES,
    DUPLICATE_WINDOW_S,
    account,
    attribute_duplicates,
    gateway_refusals,
    phases_from,
)
from simulator.audit.collect import LAT_MAX_MS, Collected, consume
from simulator.audit.result import AuditResult
from simulator.audit.timeline import ZOOM_AFTER_S, ZOOM_BEFORE_S, ZOOM_MAX_S, drain_time, flush_zoom, timeline
from simulator.audit.verdicts import fault_verdict, run_verdicts, slo_verdicts
from simulator.scenario import Slos

__all__ = [
    "DUPLICATE_CAUSES",
    "DUPLICATE_WINDOW_S",
    "LAT_MAX_MS",
    "ZOOM_AFTER_S",
    "ZOOM_BEFORE_S",
    "ZOOM_MAX_S",
    "Collected",
    "account",
    "attribute_duplicates",
    "consume",
    "drain_time",
    "evaluate",
    "fault_verdict",
    "flush_zoom",
    "gateway_refusals",
    "phases_from",
    "run_verdicts",
    "slo_verdicts",
    "timeline",
]


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
