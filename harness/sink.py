"""A local UDP sink that acknowledges IBP/1 batches at once (no Kafka): the simulator's capacity yardstick.

It parses each DATA datagram, verifies nothing (speed is the point) and answers ``ACK last_seq`` signed
with the device's derived key. Run it in its own process so it does not share the simulator's core:
``python -m simulator sink --port 0 --master-key-file F`` prints ``event=listening udp_port=N``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct

from ibp import protocol as ibp


class AckSink(asyncio.DatagramProtocol):
    def __init__(self, master_key: bytes) -> None:
        self.master_key = master_key
        self.keys: dict[str, bytes] = {}
        self.datagrams = 0
        self.readings = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if data[:2] != ibp.MAGIC or len(data) < 10:
            return
        n = data[4]
        device_id = data[5 : 5 + n].decode()
        first_seq, count = struct.unpack_from(">IB", data, 5 + n)
        key = self.keys.get(device_id)
        if key is None:
            key = self.keys[device_id] = ibp.derive_device_key(self.master_key, device_id)
        self.datagrams += 1
        self.readings += count
        assert self.transport is not None
        self.transport.sendto(ibp.encode_ack(device_id, key, first_seq + count - 1), addr)


async def serve(master_key: bytes, host: str = "127.0.0.1", port: int = 0) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind((host, port))
    transport, proto = await loop.create_datagram_endpoint(lambda: AckSink(master_key), sock=sock)
    print(f"event=listening udp_port={sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    transport.close()
    print(f"event=stopped datagrams={proto.datagrams} readings={proto.readings}", flush=True)
