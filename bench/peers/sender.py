"""The load for UDP peers: pre-built datagrams sent at a fixed rate from several source sockets.

Datagrams are built before the clock starts, so the sender's cost is one ``send()`` per datagram; the
rate is held by sending what is due every half millisecond. Several connected source sockets spread the
load over SO_REUSEPORT receivers (the gateway's workers hash on the source port). A send refused by the
kernel (nothing listening) is counted, not retried: legacy devices have no retransmission either.
"""

from __future__ import annotations

import os
import resource
import socket
import struct
import time

from ibp import protocol

LEGACY_ID_LEN = protocol.LEGACY_ID_LEN


def legacy_datagrams(count: int, devices: int = 1000) -> list[bytes]:
    """One reading per datagram in the pilot's legacy binary format (magic, 16-byte id, seq, JSON payload).

    The same bytes as ``protocol.encode_legacy_binary`` builds, formatted directly because a million of
    them must be ready in about a second.
    """
    ids = [f"leg-{d:06d}".encode().ljust(LEGACY_ID_LEN, b"\x00") for d in range(devices)]
    pack = struct.Struct(">I").pack
    magic = protocol.LEGACY_MAGIC
    out = []
    for i in range(count):
        seq = i // devices + 1
        out.append(b'%s%s%s{"run": "peers", "n": %d, "t": 21.5}' % (magic, ids[i % devices], pack(seq), i))
    return out


def batched_datagrams(count: int, batch: int, devices: int = 1000) -> list[bytes]:
    """The gateway's batched IBP/1 datagrams (``batch`` readings each, HMAC-signed), as its fleet sends them."""
    key = os.urandom(32)
    out = []
    for i in range(count):
        device_id = f"sim-peer-{i % devices:06d}"
        first = (i // devices) * batch + 1
        readings = [
            (int(time.time() * 1000), b'{"run":"peers","n":%d,"t":21.5}' % (first + j)) for j in range(batch)
        ]
        out.append(protocol.encode_data(device_id, key, first, readings))
    return out


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def send_at_rate(host: str, port: int, datagrams: list[bytes], rate: float, sockets: int = 32) -> dict:
    """Send every datagram at ``rate`` per second; returns what was sent, how fast, and the sender's CPU."""
    socks = []
    for _ in range(sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.connect((host, port))
        socks.append(s)
    sends = [s.send for s in socks]
    n, refused, i = len(datagrams), 0, 0
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    try:
        while i < n:
            due = min(n, int((time.perf_counter() - t0) * rate) + 1)
            if i >= due:
                time.sleep(0.0005)
                continue
            while i < due:
                try:
                    sends[i % sockets](datagrams[i])
                except (ConnectionRefusedError, BlockingIOError):
                    refused += 1
                i += 1
    finally:
        elapsed = time.perf_counter() - t0
        for s in socks:
            s.close()
    return {
        "sent": n - refused,
        "refused": refused,
        "elapsed_s": round(elapsed, 3),
        "offered_per_s": rate,
        "achieved_per_s": round(n / elapsed, 1) if elapsed else None,
        "sender_cpu_s": round(_cpu_s() - cpu0, 2),
    }
