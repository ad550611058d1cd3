"""The audit result (audit.json) as a typed model, fields in the order audit.json has always had them.

The stable keys readers rely on (``delivered``, ``missing``, ``duplicates``, ``out_of_order``: integers;
``verdict``: PASS or FAIL; ``run_id``) are typed strictly; the nested sections (timeline, phases,
SLO verdicts, ...) stay plain JSON values so the file keeps its exact content. ``extra="allow"``: a key
added later appears after these, where it always has.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictInt


class AuditResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    run_id: str
    delivered: StrictInt
    missing: StrictInt
    duplicates: StrictInt
    out_of_order: StrictInt
    expected: int | None
    unexpected: StrictInt
    buffered_expected: StrictInt
    buffered_delivered: StrictInt
    records: StrictInt
    skipped_other_runs: StrictInt
    devices: StrictInt
    timestamp_type: Any
    latency_ms: dict[str, Any]
    negative_latency_records: StrictInt
    peak_rate: Any
    peak_rate_during_flush: Any
    drain_time_s: Any
    drained: Any
    baseline_p99_ms: Any
    recovery_time_s: Any
    errors: dict[str, StrictInt]
    phases: dict[str, Any]
    missing_examples: list[str]
    agents: StrictInt
    agent_restarts: list[dict[str, Any]]
    faults: list[dict[str, Any]]
    unexplained_duplicates: Any
    failures: list[dict[str, Any]]
    slos: list[dict[str, Any]]
    verdict: Literal["PASS", "FAIL"]
    reasons: list[str]
    timeline: list[dict[str, Any]]
    flush_timeline_100ms: Any

    def to_json(self) -> dict[str, Any]:
        """The audit.json dict, keys and values as before."""
        return self.model_dump()
