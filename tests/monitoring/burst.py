"""A short, bounded IBP/1 burst at a gateway on loopback, so every dashboard metric moves.

``send_burst`` sends ``batches`` DATA datagrams for each of ``devices`` simulated devices (keys derived
from the fleet master key, ids with the prefix "sim-"), retransmitting unacknowledged batches up to
``retries`` times, plus a few bad datagrams (garbage, a wrong tag) so the error panels have data.
It returns counts; it never targets anything but the given loopback address.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from ibp.protocol import Ack, Busy, ProtocolError, derive_device_key, encode_data, parse_response


@dataclass
class BurstResult:
    datagrams_sent: int = 0
    readings_sent: int = 0
    acked_devices: int = 0
    busy: int = 0
    bad_sent: int = 0


def send_burst(
    host: str,
    port: int,
    master_key: bytes,
    *,
    devices: int = 40,
    batches: int = 10,
    readings_per_batch: int = 20,
    retries: int = 5,
    ack_timeout: float = 2.0,
) -> BurstResult:
    if not host.startswith("127."):
        raise ValueError(f"the monitoring burst only targets loopback, not {host}")
    result = BurstResult()
    ids = [f"sim-mon-{i:04d}" for i in range(devices)]
    keys = {d: derive_device_key(master_key, d) for d in ids}
    last_seq = batches * readings_per_batch - 1
    acked: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.settimeout(0.05)
        for attempt in range(retries + 1):
            now_ms = int(time.time() * 1000)
            for device in ids:
                start = acked.get(device, -1) + 1
                if start > last_seq:
                    continue
                for first in range(start, last_seq + 1, readings_per_batch):
                    count = min(readings_per_batch, last_seq + 1 - first)
                    readings = [
                        (now_ms, json.dumps({"t": 20.5, "seq": first + k, "try": attempt}).encode())
                        for k in range(count)
                    ]
                    sock.sendto(encode_data(device, keys[device], first, readings), (host, port))
                    result.datagrams_sent += 1
                    result.readings_sent += count
            deadline = time.monotonic() + ack_timeout
            while time.monotonic() < deadline and not all(acked.get(d, -1) >= last_seq for d in ids):
                try:
                    data, _ = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                try:
                    answer = parse_response(data)
                except ProtocolError:
                    continue
                if isinstance(answer, Ack) and answer.device_id in keys:
                    acked[answer.device_id] = max(acked.get(answer.device_id, -1), answer.ack_seq)
                elif isinstance(answer, Busy):
                    result.busy += 1
            if all(acked.get(d, -1) >= last_seq for d in ids):
                break
        # a few datagrams the gateway must reject: garbage and a DATA datagram with a wrong key
        bad = [b"\x00garbage", b"IB\x09\x01", encode_data("sim-mon-bad", b"\x01" * 32, 0, [(0, b"{}")])]
        for datagram in bad:
            sock.sendto(datagram, (host, port))
            result.bad_sent += 1
    result.acked_devices = sum(1 for d in ids if acked.get(d, -1) >= last_seq)
    return result
