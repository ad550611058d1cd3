"""The soak's leak verdict on synthetic series: noise passes, a memory leak fails, an fd leak fails."""

from __future__ import annotations

import random

from harness.trend import Limits, fd_verdict, memory_verdict, theil_sen

HOUR = 3600.0


def _series(
    mb0: float, mb_per_hour: float, noise_mb: float, seed: int = 1
) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    t = [i * 5.0 for i in range(int(HOUR / 5))]
    return t, [mb0 + mb_per_hour * x / HOUR + rng.gauss(0, noise_mb) for x in t]


def test_theil_sen_ignores_outliers() -> None:
    xs = [float(i) for i in range(50)]
    ys = [2.0 * x for x in xs]
    ys[10] = ys[30] = 1000.0  # two GC spikes
    assert abs(theil_sen(xs, ys) - 2.0) < 1e-9
    assert theil_sen([1.0], [1.0]) == 0.0


def test_flat_noisy_series_passes() -> None:
    t, mb = _series(100.0, 0.0, 3.0)
    # plus a warm-up ramp and a few spikes of +40 MB, none of them a trend
    mb = [m + max(0.0, 50.0 - x / 12) for x, m in zip(t, mb, strict=True)]
    for i in range(0, len(mb), 97):
        mb[i] += 40.0
    v = memory_verdict(t, mb)
    assert v["judged"] and v["ok"], v


def test_big_process_breathing_passes() -> None:
    # a 500 MB JVM whose heap swings by 30 MB: a steep local slope but no relative growth
    t = [i * 5.0 for i in range(720)]
    mb = [500.0 + (30.0 if (i // 40) % 2 else 0.0) for i in range(720)]
    assert memory_verdict(t, mb)["ok"]


def test_leaking_series_fails() -> None:
    t, mb = _series(80.0, 40.0, 2.0)
    v = memory_verdict(t, mb)
    assert v["judged"] and not v["ok"], v
    assert 30 < v["slope_mb_per_hour"] < 50 and v["growth"] > 0.05
    assert "LEAK" in v["note"]


def test_slow_growth_below_the_absolute_threshold_passes() -> None:
    # a 10 MB process growing 10 MB/h grows 30 % but stays under 20 MB/h: not judged a leak
    t, mb = _series(10.0, 10.0, 0.1)
    assert memory_verdict(t, mb)["ok"]


def test_short_window_is_not_judged() -> None:
    t, mb = _series(80.0, 400.0, 1.0)
    t, mb = t[:36], mb[:36]  # three minutes
    v = memory_verdict(t, mb)
    assert v["ok"] and not v["judged"] and "not judged" in v["note"]
    assert not memory_verdict(t, mb, Limits(min_window_s=60))["ok"]


def test_fds_back_to_baseline_pass() -> None:
    v = fd_verdict([57, 59, 57, 58, 60, 57, 57])
    assert v["judged"] and v["ok"], v


def test_fd_leak_fails() -> None:
    v = fd_verdict([57 + 3 * i for i in range(10)])
    assert v["judged"] and not v["ok"] and "fd leak" in v["note"], v


def test_one_boundary_caught_busy_does_not_fail() -> None:
    assert fd_verdict([40, 41, 40, 40, 55])["ok"]  # the lowest of the last third counts, not the last


def test_one_boundary_is_not_judged() -> None:
    v = fd_verdict([12])
    assert v["ok"] and not v["judged"]
