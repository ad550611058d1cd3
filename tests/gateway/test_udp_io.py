"""The worker's batch receive (``ibp_native.Receiver``, ``gateway.udp_io.BatchIO``) on real loopback sockets:
every datagram arrives, in order per source, with the address Python's own ``recvfrom`` would give; a datagram
longer than the slot arrives cut to the slot so the handler still counts it oversized; answers go back."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from gateway import hotpath, udp_io
from tests.gateway.native_ext import ibp_native, needs_native

pytestmark = needs_native


def _pair(family: int = socket.AF_INET, host: str = "127.0.0.1") -> tuple[socket.socket, list[socket.socket]]:
    server = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    server.setblocking(False)
    clients = [socket.socket(family, socket.SOCK_DGRAM) for _ in range(2)]
    for c in clients:
        c.bind((host, 0))
    return server, clients


def _drain(rx, fd: int) -> list:
    got: list = []
    for _ in range(1000):
        batch = rx.recv(fd)
        if not batch:
            break
        got.extend(batch)
    return got


def test_receiver_takes_every_datagram_with_its_source() -> None:
    server, clients = _pair()
    addr = server.getsockname()
    sent = []
    for i in range(200):  # more than three recvmmsg calls of 64 slots (the default rcvbuf holds ~256)
        c = clients[i % 2]
        data = b"d%03d" % i
        c.sendto(data, addr)
        sent.append((data, c.getsockname()))
    rx = ibp_native.Receiver(64, 2048)
    got = _drain(rx, server.fileno())
    assert [(d, a) for d, a in got] == sent
    assert all(type(a) is tuple and type(a[0]) is str and type(a[1]) is int for _, a in got)
    assert rx.recv(server.fileno()) == []  # nothing waiting: EAGAIN is an empty list, not an error


def test_ipv6_addresses_are_what_recvfrom_gives() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        server, clients = _pair(socket.AF_INET6, "::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    clients[0].sendto(b"six", server.getsockname()[:2])
    clients[0].sendto(b"six", server.getsockname()[:2])
    server.setblocking(True)
    reference = server.recvfrom(100)
    server.setblocking(False)
    (got,) = _drain(ibp_native.Receiver(8, 100), server.fileno())
    assert got == reference


def test_a_datagram_longer_than_the_slot_is_cut_to_the_slot() -> None:
    server, clients = _pair()
    clients[0].sendto(b"x" * 5000, server.getsockname())
    clients[0].sendto(b"short", server.getsockname())
    got = _drain(ibp_native.Receiver(4, 4097), server.fileno())
    assert [len(d) for d, _ in got] == [4097, 5]  # 4097 > max_datagram_bytes 4096: still "oversized"


def test_bad_sizes_and_a_closed_descriptor_are_named() -> None:
    with pytest.raises(ValueError, match=r"slots 1\.\.1024"):
        ibp_native.Receiver(0, 100)
    with pytest.raises(ValueError, match=r"size 1\.\.65536"):
        ibp_native.Receiver(8, 70_000)
    with pytest.raises(OSError):
        ibp_native.Receiver(8, 100).recv(-1)


@pytest.mark.skipif(hotpath.IMPL != "native", reason="BatchIO is the native path's (this run: IBP_NATIVE=0)")
def test_batch_io_hands_datagrams_to_the_handler_and_answers() -> None:
    async def scenario() -> tuple[list, list[bytes]]:
        loop = asyncio.get_running_loop()
        server, (client, _) = _pair()
        client.setblocking(False)
        seen: list = []
        io: udp_io.BatchIO

        def handle(data: bytes, addr) -> None:
            seen.append((data, addr))
            io.sendto(b"ack:" + data, addr)

        io = udp_io.BatchIO(loop, server, handle, max_datagram_bytes=4096)
        for i in range(200):
            client.sendto(b"%d" % i, server.getsockname())
        answers: list[bytes] = []
        for _ in range(200):
            await asyncio.sleep(0.01)
            while True:
                try:
                    answers.append(client.recv(100))
                except BlockingIOError:
                    break
            if len(answers) >= 200:
                break
        io.close()
        assert server.fileno() == -1  # closed with the io
        return seen, answers

    seen, answers = asyncio.run(scenario())
    assert [d for d, _ in seen] == [b"%d" % i for i in range(200)]
    assert answers == [b"ack:%d" % i for i in range(200)]


def test_receive_buffer_goes_past_rmem_max_when_root() -> None:
    """SO_RCVBUFFORCE (CAP_NET_ADMIN) lifts net.core.rmem_max; without it the kernel caps the request."""
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp_io.set_rcvbuf(s, 2 * rmem_max)
        got = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # the kernel reports twice what it set
    finally:
        s.close()
    if os.geteuid() == 0:
        assert got >= 4 * rmem_max
    else:
        assert got <= 2 * rmem_max
