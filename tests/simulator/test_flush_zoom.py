"""The flush zoom (issue 14 item 4): the audit's 100 ms view of the flush window and its plot.

A flush that drains in 1.5 s is one or two bars per second; at 100 ms the rate's rise and fall and the
backlog's descent must be visible, bounded to the window, and counted exactly.
"""

from __future__ import annotations

import itertools
import time

from simulator.audit import auditor, collect
from simulator.report import bundle
from simulator.scenario import Slos

DEVICE = "sim-000000"


def _flush_run(flush: float) -> tuple[auditor.Collected, dict]:
    """100 readings before the outage (1 per 100 ms), 300 buffered during it, appended in 1.5 s after the flush."""
    col = auditor.Collected()
    seq = 0

    def land(dts_ms: int, kts_ms: int) -> None:
        nonlocal seq
        rec = type("Rec", (), {})()
        rec.value = (
            f'{{"device_id":"{DEVICE}","seq":{seq},"device_ts_ms":{dts_ms},"payload":{{"run":"r"}}}}'
        ).encode()
        rec.timestamp, rec.timestamp_type = kts_ms, 1
        collect._one(col, rec, b'"run":"r"', "r", {}, int(flush * 1000), int((flush - 30) * 1000))
        seq += 1

    base = int((flush - 40) * 1000)
    for i in range(100):  # normal phase: landed 5 ms after generation
        land(base + i * 100, base + i * 100 + 5)
    out0 = int((flush - 30) * 1000)
    for i in range(300):  # outage: generated over 30 s, all landed in the first 1.5 s after the flush
        land(out0 + i * 100, int(flush * 1000) + i * 5)
    agent = {
        "agent_index": 0,
        "counters": {},
        "markers": [
            {"event": "outage_start", "ts": flush - 30, "at": flush - 30},
            {"event": "flush_start", "ts": flush, "at": flush},
        ],
        "expected": [[DEVICE, 0, 400, 100, 400, []]],
    }
    return col, agent


def test_the_flush_window_at_100_ms_counts_every_reading_and_shows_the_backlog_fall() -> None:
    flush = float(int(time.time()) - 60)
    col, agent = _flush_run(flush)
    audit = auditor.evaluate(col, [agent], Slos(min_peak_rate=0), "r")
    assert audit["drained"] is True and audit["drain_time_s"] == 1.495
    zoom = audit["flush_timeline_100ms"]
    # from 1 s before the flush to 1 s after the drain (the last record landed at flush + 1.495 s)
    assert zoom[0]["t"] == round(flush - 1.0, 1)
    assert zoom[-1]["t"] == round(flush + 1.4, 1)  # capped at the last record's bucket
    assert all(round(b["t"] - a["t"], 1) == 0.1 for a, b in itertools.pairwise(zoom))
    # 20 readings per 100 ms bucket during the flush (one every 5 ms) = 200 readings/s
    in_flush = [p for p in zoom if flush <= p["t"] < flush + 1.5]
    assert len(in_flush) == 15 and all(p["rate"] == 200 for p in in_flush), in_flush
    assert sum(p["rate"] for p in in_flush) // 10 == 300
    # the backlog: 300 just before the flush, down by 20 per bucket, 0 at the end
    before = [p for p in zoom if p["t"] < flush]
    assert before[-1]["backlog"] == 300 and all(p["rate"] == 0 for p in before)
    assert [p["backlog"] for p in in_flush] == [300 - 20 * (i + 1) for i in range(15)]
    counters = {"generated": 400, "acked": 400, "retransmits": 0, "busy": 0}
    shown = {**agent, "host": "localhost", "devices": 1, "counters": counters}
    html = bundle.report_html(audit, [shown], "scenario: test\n")
    assert "The flush, zoomed (100 ms)" in html and html.count("data:image/png;base64,") == 2


def test_no_flush_no_zoom_and_a_bounded_window_for_a_drain_that_never_ended() -> None:
    flush = float(int(time.time()) - 300)
    col, _ = _flush_run(flush)
    assert auditor.flush_zoom(col, None, None) == []
    # a run that never drained: the window runs to the last record, at most ZOOM_MAX_S
    col.last_ts_ms = int((flush + 250) * 1000)
    zoom = auditor.flush_zoom(col, flush, None)
    assert len(zoom) == int(auditor.ZOOM_MAX_S * 10) + 1
