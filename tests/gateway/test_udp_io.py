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


def _ipv6_pair() -> tuple[socket.socket, list[socket.socket]]:
    """:func:`_pair` on ``::1``; the test is skipped, saying why, on a host without IPv6 loopback."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host (socket.has_ipv6 is False)")
    try:
        return _pair(socket.AF_INET6, "::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this host (binding ::1 failed: {exc})")


def test_ipv6_addresses_are_what_recvfrom_gives() -> None:
    server, clients = _ipv6_pair()
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


def _recv_all(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    got = []
    while True:
        try:
            got.append(sock.recv(100))
        except BlockingIOError:
            return got


def test_send_many_to_sends_each_datagram_to_its_own_address() -> None:
    server, clients = _pair()
    datagrams = [b"a0", b"b0", b"a1", b"b1"]
    addrs = [clients[0].getsockname(), clients[1].getsockname()] * 2
    assert ibp_native.send_many_to(server.fileno(), datagrams, addrs, 0) == 4
    assert _recv_all(clients[0]) == [b"a0", b"a1"]
    assert _recv_all(clients[1]) == [b"b0", b"b1"]
    assert ibp_native.send_many_to(server.fileno(), datagrams, addrs, 4) == 0  # nothing from start 4


def test_send_many_to_ipv6() -> None:
    server, clients = _ipv6_pair()
    dest = clients[0].getsockname()
    assert len(dest) == 4  # (host, port, flowinfo, scope_id), as Receiver.recv gives it
    assert ibp_native.send_many_to(server.fileno(), [b"six"], [dest], 0) == 1
    assert _recv_all(clients[0]) == [b"six"]


def test_send_many_to_sends_up_to_a_bad_address_then_names_it() -> None:
    server, clients = _pair()
    good = clients[0].getsockname()
    datagrams, addrs = [b"1", b"2", b"3"], [good, ("gateway.example", 5000), good]
    fd = server.fileno()
    assert ibp_native.send_many_to(fd, datagrams, addrs, 0) == 1  # the good one before it goes
    with pytest.raises(ValueError, match=r"gateway\.example.*not a numeric"):
        ibp_native.send_many_to(fd, datagrams, addrs, 1)
    assert ibp_native.send_many_to(fd, datagrams, addrs, 2) == 1
    assert _recv_all(clients[0]) == [b"1", b"3"]
    with pytest.raises(ValueError, match="3 datagrams but 2 addresses"):
        ibp_native.send_many_to(fd, datagrams, addrs[:2], 0)
    with pytest.raises(OSError):
        ibp_native.send_many_to(-1, [b"x"], [good], 0)


@pytest.mark.skipif(hotpath.IMPL != "native", reason="BatchIO is the native path's (this run: IBP_NATIVE=0)")
def test_batch_io_sends_one_callbacks_answers_in_one_call_and_close_sends_the_rest() -> None:
    """What one callback answers (a settled Kafka batch) leaves in one sendmmsg; a bad address loses only its
    own answer; answers still queued when the worker closes its socket go out first."""

    async def scenario() -> tuple[list[int], list[bytes], list[bytes], int]:
        loop = asyncio.get_running_loop()
        server, (client, other) = _pair()
        io = udp_io.BatchIO(loop, server, lambda data, addr: None, max_datagram_bytes=4096)
        calls: list[int] = []
        real = io.send_many_to

        def counting(fd, datagrams, addrs, start):
            calls.append(len(datagrams) - start)
            return real(fd, datagrams, addrs, start)

        io.send_many_to = counting
        for i in range(200):  # the client's default receive buffer holds about 256 of them
            io.sendto(b"%d" % i, client.getsockname())
        io.sendto(b"lost", ("not-an-address", 1))
        io.sendto(b"other", other.getsockname())
        await asyncio.sleep(0.05)
        first = list(calls)
        io.sendto(b"last", client.getsockname())
        io.close()  # before the loop ran its flush
        return first, _recv_all(client), _recv_all(other), len(calls)

    first, got, other, ncalls = asyncio.run(scenario())
    assert first[0] == 202  # one call took the whole queue (it stopped at the bad address)
    assert got == [b"%d" % i for i in range(200)] + [b"last"]
    assert other == [b"other"]
    assert ncalls == len(first) + 1


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
