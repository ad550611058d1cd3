"""Limit search: bisection against a fake runner with a known boundary, and the limit classifier."""

from __future__ import annotations

import pytest

from simulator.orchestration.limit import StepResult, classify, search


class Fake:
    def __init__(self, boundary: float, cost_s: float = 60.0) -> None:
        self.boundary = boundary
        self.sizes: list[float] = []
        self.now = 0.0
        self.cost_s = cost_s

    def clock(self) -> float:
        return self.now

    def run(self, size: float) -> StepResult:
        self.sizes.append(size)
        self.now += self.cost_s
        ok = size <= self.boundary
        return StepResult(size=size, passed=ok, drain_s=1.0, failed_slos=[] if ok else ["recovery_within_s"])


def test_finds_boundary_within_tolerance_and_runs() -> None:
    f = Fake(3700)
    res = search(f, 500, 80000, clock=f.clock, max_runs=10)
    assert res.stopped == "converged"
    assert res.boundary is not None and res.first_fail is not None
    assert res.boundary <= 3700 < res.first_fail
    assert (res.first_fail - res.boundary) / res.boundary < 0.10
    assert len(f.sizes) <= 10
    assert f.sizes[:4] == [500, 1000, 2000, 4000]
    assert res.limit == "recovery SLO missed"


def test_respects_max_runs() -> None:
    f = Fake(3700)
    res = search(f, 100, 80000, clock=f.clock, max_runs=4)
    assert len(f.sizes) == 4 and res.stopped == "max runs reached"
    assert res.boundary == 800


def test_respects_budget() -> None:
    f = Fake(3700, cost_s=100)
    res = search(f, 500, 80000, clock=f.clock, budget_s=250)
    assert len(f.sizes) == 3 and res.stopped == "budget exhausted"


def test_fails_at_min() -> None:
    f = Fake(10)
    res = search(f, 500, 80000, clock=f.clock)
    assert f.sizes == [500] and res.stopped == "failed at min" and res.boundary is None


def test_passes_at_max() -> None:
    f = Fake(1e9)
    res = search(f, 5000, 30000, clock=f.clock)
    assert f.sizes == [5000, 10000, 20000, 30000]
    assert res.stopped == "max reached" and res.boundary == 30000 and res.limit == "none within range"


def test_bad_range() -> None:
    with pytest.raises(ValueError):
        search(Fake(1), 10, 5)


def _fail(**kw: object) -> StepResult:
    return StepResult(size=1, passed=False, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("step", "limit"),
    [
        (_fail(gateway_cpu=0.97, overflow=5, failed_slos=["recovery_within_s"]), "gateway CPU saturated"),
        (_fail(gateway_cpu=0.5, overflow=5, failed_slos=["all_delivered"]), "device buffers overflowed"),
        (_fail(kernel_drops=300, busy=10, failed_slos=["recovery_within_s"]), "kernel UDP drops"),
        (_fail(busy=10, failed_slos=["recovery_within_s"]), "BUSY backpressure"),
        (_fail(failed_slos=["recovery_within_s"], drain_s=3.0), "recovery SLO missed"),
        (_fail(failed_slos=["all_delivered"], missing=4), "not drained (readings missing)"),
        (_fail(failed_slos=["min_peak_rate"], drain_s=1.0), "peak rate SLO missed"),
        (
            _fail(failed_slos=["run_completed"], failure="no answer", drain_s=1.0),
            "run did not complete (no answer)",
        ),
    ],
)
def test_classifier(step: StepResult, limit: str) -> None:
    assert classify(step) == limit


def test_classifier_pass() -> None:
    assert classify(StepResult(size=1, passed=True)) == "none"
