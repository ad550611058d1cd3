"""Is a soak's memory or fd series a leak or noise? Pure functions, no I/O (harness/soak.py uses them).

Kept apart from the soak loop so the verdict can be unit-tested on synthetic series: a flat noisy
series must pass, a slow leak must fail, an fd count that does not come back between cycles must fail.

Memory (one series per process, RSS in MB against seconds since the soak started):
  - the first third of the soak is warm-up (JVM heap growing to its working size, the allocator's
    arenas filling, the first segments opened) and is not judged;
  - the middle third is the reference, the last third the test;
  - it is a leak only when BOTH the robust slope (Theil-Sen, the median of pairwise slopes, which
    ignores the odd GC spike) over the last two thirds exceeds ``mb_per_hour`` AND the median of the
    last third exceeds the median of the middle third by more than ``rel_growth`` of it. Either alone
    is noise: a large process breathing by a few MB has a steep slope over minutes but no relative
    growth; a tiny process can grow 10 % by a few hundred kB, which is no leak in MB/hour;
  - a judged window (the last two thirds) shorter than ``min_window_s`` is "not judged": over a few
    minutes warm-up and a leak look the same, so a short soak (CI) reports the figures and does not
    pass or fail on them.

File descriptors (per process, the count at each cycle boundary: the cycle's fleet closed and its audit
consumer stopped): after a cycle everything it opened must be closed again. The baseline is the count
at the first boundary; it fails when the lowest count over the last third of the later boundaries (at
least the last two, when there are two) is above the baseline by more than ``max(fd_abs, fd_rel * baseline)``. The minimum, not
the last value, so one boundary that caught a connection being set up does not fail it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_POINTS = 400  # Theil-Sen is O(n^2): longer series are thinned evenly first


@dataclass(frozen=True)
class Limits:
    mb_per_hour: float = 20.0
    rel_growth: float = 0.05
    min_window_s: float = 600.0
    fd_abs: int = 4
    fd_rel: float = 0.05


def theil_sen(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of the slopes between every pair of points (0.0 for fewer than two distinct x)."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n > MAX_POINTS:
        idx = [round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)]
        xs, ys = [xs[i] for i in idx], [ys[i] for i in idx]
        n = MAX_POINTS
    slopes = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(n) for j in range(i + 1, n) if xs[j] != xs[i]]
    return statistics.median(slopes) if slopes else 0.0


def memory_verdict(t_s: Sequence[float], mb: Sequence[float], limits: Limits = Limits()) -> dict[str, Any]:
    """The memory verdict of one process: ``ok`` False only for a trend beyond noise (module docstring)."""
    out: dict[str, Any] = {
        "ok": True,
        "judged": False,
        "start_mb": round(mb[0], 1) if mb else None,
        "end_mb": round(mb[-1], 1) if mb else None,
        "max_mb": round(max(mb), 1) if mb else None,
    }
    if len(t_s) < 6:
        out["note"] = f"{len(t_s)} samples: too few to judge"
        return out
    t0, t1 = t_s[0], t_s[-1]
    third = (t1 - t0) / 3
    mid = [m for t, m in zip(t_s, mb, strict=True) if t0 + third <= t < t0 + 2 * third]
    last = [m for t, m in zip(t_s, mb, strict=True) if t >= t0 + 2 * third]
    window = [(t, m) for t, m in zip(t_s, mb, strict=True) if t >= t0 + third]
    slope_h = theil_sen([t for t, _ in window], [m for _, m in window]) * 3600 if len(window) >= 2 else 0.0
    med_mid = statistics.median(mid) if mid else None
    med_last = statistics.median(last) if last else None
    growth = (med_last - med_mid) / med_mid if med_mid and med_last is not None else 0.0
    out.update(
        slope_mb_per_hour=round(slope_h, 2),
        median_middle_mb=None if med_mid is None else round(med_mid, 1),
        median_last_mb=None if med_last is None else round(med_last, 1),
        growth=round(growth, 4),
        window_s=round(t1 - t0 - third, 1),
    )
    if t1 - t0 - third < limits.min_window_s or not mid or not last:
        out["note"] = (
            f"judged window {t1 - t0 - third:.0f} s < {limits.min_window_s:.0f} s: figures only, not judged"
        )
        return out
    out["judged"] = True
    leak = slope_h > limits.mb_per_hour and growth > limits.rel_growth
    out["ok"] = not leak
    out["note"] = (
        f"slope {slope_h:+.1f} MB/h (limit {limits.mb_per_hour:g}), last third {growth:+.1%} over the middle "
        f"(limit {limits.rel_growth:.0%}): " + ("LEAK" if leak else "within noise")
    )
    return out


def fd_verdict(boundary_fds: Sequence[int], limits: Limits = Limits()) -> dict[str, Any]:
    """The fd verdict of one process from its counts at each cycle boundary (module docstring)."""
    out: dict[str, Any] = {"ok": True, "judged": False, "boundaries": list(boundary_fds)}
    if len(boundary_fds) < 2:
        out["note"] = f"{len(boundary_fds)} cycle boundaries: too few to judge"
        return out
    base = boundary_fds[0]
    rest = boundary_fds[1:]
    tail = rest[-max(min(2, len(rest)), -(-len(rest) // 3)) :]
    tol = max(limits.fd_abs, round(limits.fd_rel * base))
    low = min(tail)
    out.update(judged=True, baseline=base, tail_min=low, tolerance=tol, ok=low <= base + tol)
    out["note"] = f"baseline {base}, lowest of the last {len(tail)} boundaries {low} (tolerance +{tol}): " + (
        "back to baseline" if out["ok"] else "NOT back to baseline: fd leak"
    )
    return out
