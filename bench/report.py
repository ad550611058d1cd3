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
        f"{gw['loadgen_cpu_s_per_100k']:.2f}" if "loadgen_cpu_s_per_100k" in gw else "-",
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
        "CPU s/100k sender",
        "load 1/5/15",
    ):
        table.add_column(col, justify="right")
    _row(table, "none", report["no_latency"])
    for key, value in report.items():
        if key.startswith("latency_"):
            _row(table, key.removeprefix("latency_"), value)
    console = Console(width=max(Console().width, 160))  # nine columns: never squeeze them into 80
    console.print(table)
    for key, value in report.items():
        if key.startswith("latency_"):
            console.print(
                f"{key}: gateway at {value['vs_no_latency']:.2f} of its no-latency figure "
                f"({value['gateway']['devices']:,} devices against {report['no_latency']['gateway']['devices']:,}: "
                "a stop-and-wait fleet keeps at most devices x batch readings in flight)"
            )
    for key in ["no_latency"] + [k for k in report if k.startswith("latency_")]:
        half = report[key]["gateway"].get("half_load")
        if half is not None:
            lat = half["ack_latency_ms"]
            console.print(
                f"{key}: paced at half of it ({half['offered_readings_per_s']:,.0f} readings/s offered, "
                f"{half['readings_per_s']:,.0f} acked/s): ack p50/p99 {lat['p50']:.0f} / {lat['p99']:.0f} ms; "
                f"goal p99 <= linger + 2 x mean produce time = {half['goal_p99_ms']} ms"
            )
            if half.get("produce_ms_p99_bucket") is not None:
                console.print(
                    f"  the gateway's own p99 buckets there: Kafka produce <= {half['produce_ms_p99_bucket']:g} ms "
                    f"(mean {half['produce_ms_mean']} ms), datagram received -> ACK sent "
                    f"<= {half['gateway_ack_ms_p99_bucket']:g} ms"
                )
    fast = report["no_latency"].get("gateway_fast_level")
    if fast is not None:
        console.print(
            f"gateway with kafka.compression_level={fast['compression_level']}: {fast['readings_per_s']:,.0f} acked/s, "
            f"{fast['gateway_cpu_s_per_100k']:.2f} CPU s/100k, ack p50/p99 {fast['ack_latency_ms']['p50']:.0f} / "
            f"{fast['ack_latency_ms']['p99']:.0f} ms (the rows above use lz4 level 9, the only level of aiokafka's own "
            "builder, which the bare producer uses)"
        )
    sim = report.get("simulator")
    if sim is not None:
        console.print(f"simulator capacity: {sim if 'error' in sim else 'merged under key simulator'}")


def _n(value, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def peer_rows(peers: dict) -> list[list[str]]:
    """The peer table as strings, one list per row (the README's table is pasted from these)."""
    rows = []
    for r in peers["rows"]:
        udp = r.get("kernel_udp") or {}
        rows.append(
            [
                r["peer"],
                "yes" if r["hmac"] else "no",
                "yes" if r["ack"] else "no",
                r["load"],
                _n(r.get("sent_readings")),
                _n(r.get("landed_readings")),
                f"{_n(r.get('lost'))} ({_n(r.get('loss_pct'), '.1f')} %)",
                _n(r.get("landed_readings_per_s")),
                _n(r.get("cpu_s_per_100k"), ".2f"),
                _n(udp.get("rcvbuf_errors")) if udp else "-",
            ]
        )
    return rows


PEER_COLUMNS = (
    "peer",
    "HMAC",
    "ack",
    "load",
    "sent readings",
    "landed in Kafka",
    "lost",
    "landed/s",
    "CPU s/100k",
    "kernel UDP rcvbuf errors",
)


def print_peers(peers: dict) -> None:
    """The peers table printed at the end of ``make bench``: every row says whether it authenticates and acks."""
    s = peers["settings"]
    table = Table(
        title=(
            f"peers, same broker: {s['partitions']} partitions, acks={s['acks']}, {s['compression']} "
            f"(gateway level {s.get('compression_level', {}).get('gateway (legacy path)', 'default')}, "
            "librdkafka and Go clients their fast mode), "
            f"UDP rcvbuf {s['rcvbuf_bytes']:,} B, {s['peer_seconds']:g} s per load "
            f"(load {' '.join(f'{x:.1f}' for x in peers['load_before'])})"
        )
    )
    for i, col in enumerate(PEER_COLUMNS):
        table.add_column(col, justify="left" if i in (0, 3) else "right")
    for row in peer_rows(peers):
        table.add_row(*row)
    console = Console(width=max(Console().width, 200))  # ten columns: never squeeze them into 80
    console.print(table)
    console.print(peers["note"])
    console.print(
        "Batched ibp1 rows for rsyslog/otelcol: each datagram lands as one opaque record (readings = records x "
        "batch, nothing parsed or verified). Kernel UDP errors are host-wide (/proc/net/snmp)."
    )
    for skipped in peers.get("skipped", []):
        console.print(
            f"skipped {skipped['peer']}{' (' + skipped['load'] + ')' if 'load' in skipped else ''}: {skipped['reason']}"
        )
