"""Limit search (issue 14): the largest herd that still passes every SLO.

The search only knows a Runner: ``run(size) -> StepResult``. It grows the size geometrically (x2) from
``min`` until a step fails or ``max`` is reached, then bisects between the last pass and the first fail
until the gap is below ``tolerance`` (10 %) of the passing size, or the time budget / run count is spent.
The real runner (one-machine stack) and the report live in ``harness/limit.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

VARY = ("devices", "outage_s", "rate_hz")


@dataclass
class StepResult:
    size: float
    passed: bool
    failed_slos: list[str] = field(default_factory=list)
    backlog: int = 0  # readings buffered during the outage
    drain_s: float | None = None
    peak_rate: float = 0.0
    p99_recovery_s: float | None = None
    missing: int = 0
    busy: int = 0
    kernel_drops: int = 0
    overflow: int = 0
    gateway_cpu: float | None = None  # share of the gateway's cores used during the flush (0..1)
    wall_s: float = 0.0
    bundle: str = ""
    command: str = ""
    failure: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Runner(Protocol):
    def run(self, size: float) -> StepResult: ...


@dataclass
class SearchResult:
    steps: list[StepResult]
    boundary: float | None  # the largest size that passed
    first_fail: float | None  # the smallest size that failed
    stopped: str  # converged | max reached | failed at min | budget exhausted | max runs reached
    limit: str  # the limiting factor named from the first failing step


def _round(size: float, integer: bool) -> float:
    return float(round(size)) if integer else round(size, 3)


def search(
    runner: Runner,
    lo: float,
    hi: float,
    *,
    budget_s: float = 1800.0,
    max_runs: int = 10,
    tolerance: float = 0.10,
    integer: bool = True,
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[StepResult, int], None] | None = None,
) -> SearchResult:
    if lo <= 0 or hi < lo:
        raise ValueError(f"need 0 < min <= max, got {lo} .. {hi}")
    start = clock()
    steps: list[StepResult] = []
    good: float | None = None
    bad: float | None = None
    stopped = ""

    def step(size: float) -> StepResult:
        r = runner.run(size)
        steps.append(r)
        if progress:
            progress(r, len(steps))
        return r

    def out_of_budget() -> str:
        if len(steps) >= max_runs:
            return "max runs reached"
        if clock() - start >= budget_s:
            return "budget exhausted"
        return ""

    size = _round(lo, integer)
    while True:  # grow
        r = step(size)
        if r.passed:
            good = size
            if size >= hi:
                stopped = "max reached"
                break
        else:
            bad = size
            if good is None:
                stopped = "failed at min"
            break
        stopped = out_of_budget()
        if stopped:
            break
        size = _round(min(size * 2, hi), integer)
    if good is not None and bad is not None and not stopped:
        while (bad - good) / good >= tolerance:  # bisect
            stopped = out_of_budget()
            if stopped:
                break
            mid = _round((good + bad) / 2, integer)
            if mid in (good, bad):
                break
            if step(mid).passed:
                good = mid
            else:
                bad = mid
        stopped = stopped or "converged"
    first = next((s for s in steps if s.size == bad), None)
    return SearchResult(steps, good, bad, stopped, classify(first) if first else "none within range")


def classify(r: StepResult) -> str:
    """Name the first limit a failing step hit, from the figures it collected (most causal first)."""
    if r.passed:
        return "none"
    if r.gateway_cpu is not None and r.gateway_cpu >= 0.9:
        return "gateway CPU saturated"
    if r.overflow > 0:
        return "device buffers overflowed"
    if r.kernel_drops > 0:
        return "kernel UDP drops"
    if r.busy > 0 and ("recovery_within_s" in r.failed_slos or "all_delivered" in r.failed_slos):
        return "BUSY backpressure"
    if r.failure or "run_completed" in r.failed_slos:
        return f"run did not complete ({r.failure})" if r.failure else "run did not complete"
    if "all_delivered" in r.failed_slos or r.missing > 0 or r.drain_s is None:
        return "not drained (readings missing)"
    if "recovery_within_s" in r.failed_slos:
        return "recovery SLO missed"
    if "min_peak_rate" in r.failed_slos:
        return "peak rate SLO missed"
    if r.busy > 0:
        return "BUSY backpressure"
    return "SLO failed: " + ", ".join(r.failed_slos) if r.failed_slos else "failed"
