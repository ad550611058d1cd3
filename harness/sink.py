"""A local UDP sink that acknowledges IBP/1 batches at once (no Kafka): the simulator's capacity yardstick.

It parses each DATA datagram, verifies nothing (speed is the point) and answers ``ACK last_seq`` signed
with the device's derived key. With the native module the whole receive-answer round is one call
(``ibp_native.AckResponder``): in Python the sink took a core near 140,000 datagrams/s, so on two cores
it, not the simulator, set the measured device count. Run it in its own process so it does not share the simulator's core:
``python -m simulator sink --port 0 --master-key-file F`` prints ``event=listening udp_port=N``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import struct

from gateway import hotpath
from gateway.udp_io import TransportIO, UdpIO, open_udp, set_rcvbuf
from ibp import protocol as ibp
from simulator.devices.sockets import enable_gro

RCVBUF_BYTES = 32 * 1024 * 1024  # a herd of 5,000 devices flushing 1,472-byte datagrams at once: ~12 MB


class AckSink(asyncio.DatagramProtocol):
    """Answers every DATA datagram with the ACK of its last reading. ``serve`` reads its socket with the
    gateway's own socket code and codec (``recvmmsg`` and the native ACK encoder where ``ibp_native`` is
    built); as a datagram protocol (tests) it runs on the event loop's transport."""

    def __init__(self, master_key: bytes) -> None:
        self.master_key = master_key
        self.keys: dict[bytes, bytes] = {}
        self.datagrams = 0
        self.readings = 0
        self.io: UdpIO | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.io = TransportIO(transport)  # type: ignore[arg-type]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.handle(data, addr)

    def handle(self, data: bytes, addr: tuple) -> None:
        if data[:2] != ibp.MAGIC or len(data) < 10:
            return
        n = data[4]
        raw_id = data[5 : 5 + n]
        first_seq, count = struct.unpack_from(">IB", data, 5 + n)
        key = self.keys.get(raw_id)
        if key is None:
            key = self.keys[raw_id] = ibp.derive_device_key(self.master_key, raw_id.decode())
        self.datagrams += 1
        self.readings += count
        assert self.io is not None
        self.io.sendto(hotpath.encode_ack(raw_id, key, first_seq + count - 1), addr)


SLOTS = 64  # buffers per recvmmsg of the native responder (each up to a GRO run of datagrams)
ROUNDS = 16  # recvmmsg calls per wakeup at most


async def serve(master_key: bytes, host: str = "127.0.0.1", port: int = 0) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    set_rcvbuf(sock, RCVBUF_BYTES)
    sock.bind((host, port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if hotpath.IMPL == "native":
        # the whole round in Rust: recvmmsg, ACKs, sendmmsg (gateway/native/src/sink.rs says why)
        responder = hotpath.native_module().AckResponder(master_key, SLOTS, 65_536)
        enable_gro(sock)  # False on a kernel before 5.0: one datagram per slot, as before
        sock.setblocking(False)
        fd = sock.fileno()

        def readable() -> None:
            for _ in range(ROUNDS):
                if responder.serve(fd) < SLOTS:
                    return

        loop.add_reader(fd, readable)
        print(f"event=listening udp_port={sock.getsockname()[1]} codec=native-responder", flush=True)
        await stop.wait()
        loop.remove_reader(fd)
        sock.close()
        datagrams, readings, dropped = responder.datagrams, responder.readings, responder.dropped
    else:
        sink = AckSink(master_key)
        sink.io = await open_udp(loop, sock, sink.handle, 65_535)
        print(f"event=listening udp_port={sock.getsockname()[1]} codec={hotpath.IMPL}", flush=True)
        await stop.wait()
        sink.io.close()
        datagrams, readings, dropped = sink.datagrams, sink.readings, 0
    print(f"event=stopped datagrams={datagrams} readings={readings} acks_dropped={dropped}", flush=True)
