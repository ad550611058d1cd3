"""The bench's short table (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _row(table: Table, name: str, p: dict) -> None:
    gw = p["gateway"]
    table.add_row(
        name,
        f"{p['gateway_readings_per_s']:,.0f}",
        f"{p['bare_send']['readings_per_s']:,.0f}",
        f"{p['bare_batch']['readings_per_s']:,.0f}",
        f"{p['ratio']:.2f}" if p["ratio"] is not None else "-",
        f"{gw['ack_latency_ms']['p50']:.0f} / {gw['ack_latency_ms']['p99']:.0f}",
        f"{gw['gateway_cpu_s_per_100k']:.2f} / {p['bare_batch']['cpu_s_per_100k']:.2f}",
        " ".join(f"{x:.1f}" for x in p["load_before"]),
    )


def print_table(report: dict) -> None:
    table = Table(
        title=f"make bench {report['timestamp']} ({report['host']['cpus']} CPUs, broker on this host)"
    )
    for col in (
        "broker latency",
        "gateway acked/s",
        "bare send()/s",
        "bare batch/s",
        "ratio",
        "ack p50/p99 ms",
        "CPU s/100k gw / bare",
        "load 1/5/15",
    ):
        table.add_column(col, justify="right")
    _row(table, "none", report["no_latency"])
    for key, value in report.items():
        if key.startswith("latency_"):
            _row(table, key.removeprefix("latency_"), value)
    console = Console()
    console.print(table)
    for key, value in report.items():
        if key.startswith("latency_"):
            console.print(f"{key}: gateway at {value['vs_no_latency']:.2f} of its no-latency figure")
    sim = report.get("simulator")
    if sim is not None:
        console.print(f"simulator capacity: {sim if 'error' in sim else 'merged under key simulator'}")
