"""The run over time: readings/s, backlog and latency per second, the flush zoomed to 100 ms, the drain.

One job: time series. ``timeline`` is the per-second view (Kafka time), ``flush_zoom`` the flush window
at 100 ms (``flush_timeline_100ms`` in audit.json), ``drain_time`` when the outage's backlog was all in
Kafka. Apart from the accounting because these read the collected counts by time, not by sequence;
the report plots them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.audit.collect import Collected


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
