"""``python -m simulator compare RUN_A RUN_B``: two audited runs side by side (bundle dirs or run ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = [
    ("verdict", "verdict"),
    ("delivered", "delivered"),
    ("missing", "missing"),
    ("duplicates", "duplicates"),
    ("out of order", "out_of_order"),
    ("buffered delivered", "buffered_delivered"),
    ("peak readings/s", "peak_rate"),
    ("peak during flush", "peak_rate_during_flush"),
    ("drain time s", "drain_time_s"),
    ("recovery time s", "recovery_time_s"),
    ("latency p50 ms", "latency_ms.p50"),
    ("latency p99 ms", "latency_ms.p99"),
    ("latency max ms", "latency_ms.max"),
    ("kafka", "kafka.bootstrap"),
]


def load(ref: str, reports: Path) -> dict[str, Any]:
    p = Path(ref)
    if not p.is_dir():
        p = reports / ref
    f = p / "audit.json"
    if not f.exists():
        raise FileNotFoundError(
            f"{ref}: no audit.json (give a bundle directory or a run id under {reports}/)"
        )
    return json.loads(f.read_text())


def _get(d: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)  # type: ignore[assignment]
    return d


def table(a: dict[str, Any], b: dict[str, Any]) -> Table:
    t = Table(title=f"A = {a['run_id']}\nB = {b['run_id']}")
    t.add_column("metric")
    t.add_column("A", justify="right")
    t.add_column("B", justify="right")
    t.add_column("B - A", justify="right")
    for label, key in ROWS:
        va, vb = _get(a, key), _get(b, key)
        delta = ""
        if isinstance(va, int | float) and isinstance(vb, int | float) and not isinstance(va, bool):
            diff = vb - va
            delta = f"{diff:+,}" if isinstance(diff, int) else f"{diff:+,.3f}"
        t.add_row(label, str(va), str(vb), delta)
    return t


def main(ref_a: str, ref_b: str, reports: Path) -> int:
    Console().print(table(load(ref_a, reports), load(ref_b, reports)))
    return 0
