"""Kernel UDP receive drops: per socket from /proc/net/udp{,6}, host-wide from /proc/net/snmp."""

from __future__ import annotations

from pathlib import Path


def socket_drops(port: int, proc: Path = Path("/proc/net")) -> int:
    """Sum of the ``drops`` column of every UDP socket bound to local ``port`` (our SO_REUSEPORT group)."""
    total = 0
    for name in ("udp", "udp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 13:
                continue
            local = fields[1]
            if int(local.rsplit(":", 1)[1], 16) == port:
                total += int(fields[-1])
    return total


def host_rcvbuf_errors(proc: Path = Path("/proc/net")) -> int | None:
    """``Udp: RcvbufErrors`` of this network namespace, or None when unavailable."""
    try:
        lines = (proc / "snmp").read_text().splitlines()
    except OSError:
        return None
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    if len(udp) < 2:
        return None
    header, values = udp[0], udp[1]
    try:
        return int(values[header.index("RcvbufErrors")])
    except (ValueError, IndexError):
        return None
