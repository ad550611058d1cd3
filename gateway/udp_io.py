"""The worker's UDP socket: datagrams in, answers out.

With the native module (``ibp_native.Receiver``) the worker reads its socket itself: one ``recvmmsg`` takes
up to 64 waiting datagrams, where the event loop's datagram transport makes one ``recvfrom`` and one
callback per datagram (about 2.5 µs each on this machine, a third of the worker's CPU at one reading per
datagram). Answers are queued and go out together, one ``sendmmsg`` (``ibp_native.send_many_to``) per loop
callback that made them: a Kafka batch that settles acks hundreds of devices at once, and one ``sendto``
each was an eighth of a worker's CPU. What the kernel cannot take now (EAGAIN: the send buffer is full)
waits in the bounded queue until the socket is writable, as the transport's own buffer does. Without the native module, or with ``IBP_NATIVE=0``, the
event loop's transport does both (:class:`TransportIO`).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol

from gateway import hotpath
from gateway.devices import Addr

HandleFn = Callable[[bytes, Addr], None]

SLOTS = 64  # datagrams per recvmmsg
ROUNDS = 16  # recvmmsg calls per wakeup at most, so timers and Kafka replies run between bursts
MAX_QUEUED = 65_536  # answers waiting for a full send buffer; beyond, an answer is dropped (device retries)
# Linux's SO_RCVBUFFORCE (asm-generic/socket.h); Python 3.11's socket module does not name it
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33 if sys.platform.startswith("linux") else None)


def set_rcvbuf(s: socket.socket, size: int) -> None:
    """SO_RCVBUFFORCE (root / CAP_NET_ADMIN) goes beyond net.core.rmem_max; otherwise the kernel caps it."""
    if SO_RCVBUFFORCE is not None:
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return
        except PermissionError:
            pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class UdpIO(Protocol):
    def sendto(self, datagram: bytes, addr: Addr) -> None: ...
    def close(self) -> None: ...


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, handle: HandleFn) -> None:
        self.handle = handle

    def datagram_received(self, data: bytes, addr: Addr) -> None:
        self.handle(data, addr)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable after an ACK
        pass


class TransportIO:
    """The event loop's datagram transport: one callback per datagram (the pure-Python path)."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    @classmethod
    async def open(
        cls, loop: asyncio.AbstractEventLoop, sock: socket.socket, handle: HandleFn
    ) -> TransportIO:
        transport, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(handle), sock=sock)
        return cls(transport)

    def sendto(self, datagram: bytes, addr: Addr) -> None:
        self.transport.sendto(datagram, addr)

    def close(self) -> None:
        self.transport.close()


class BatchIO:
    """``recvmmsg`` through ``ibp_native.Receiver``, answers by ``sendmmsg`` (module docstring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handle: HandleFn, max_datagram_bytes: int
    ) -> None:
        self.loop, self.sock, self.handle = loop, sock, handle
        self.fd = sock.fileno()
        sock.setblocking(False)
        native = hotpath.native_module()
        # one byte more than the largest accepted datagram: a longer one arrives cut to that length, and
        # the handler's length check still calls it oversized
        self.rx: Any = native.Receiver(SLOTS, min(max_datagram_bytes + 1, 65_536))
        self.send_many_to = native.send_many_to
        self.out: list[bytes] = []  # answers not handed to the kernel yet, and where each goes
        self.out_addrs: list[Addr] = []
        self.flush_soon = False
        self.waiting_writable = False
        self.closed = False
        self.dropped = 0
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        recv, fd, handle = self.rx.recv, self.fd, self.handle
        for _ in range(ROUNDS):
            try:
                batch = recv(fd)
            except OSError:  # an error queued on the socket (ICMP): as the transport, ignore it
                return
            for data, addr in batch:
                handle(data, addr)
            if len(batch) < SLOTS:
                return

    def sendto(self, datagram: bytes, addr: Addr) -> None:
        """Queue an answer; the queue goes out in one ``sendmmsg`` once the current callback is done (a
        settled Kafka batch answers all of its datagrams' devices from one callback)."""
        if self.closed or len(self.out) >= MAX_QUEUED:
            self.dropped += 1
            return
        self.out.append(datagram)
        self.out_addrs.append(addr)
        if not self.flush_soon and not self.waiting_writable:
            self.flush_soon = True
            self.loop.call_soon(self.flush)

    def flush(self) -> bool:
        """Hand the queued answers to the kernel; True when all went. The rest waits for the socket to be
        writable. A datagram the kernel refuses (an unreachable device) is dropped: its device retries."""
        self.flush_soon = False
        if self.closed:
            return True
        out, addrs = self.out, self.out_addrs
        done = 0
        while done < len(out):
            try:
                n = self.send_many_to(self.fd, out, addrs, done)
            except (OSError, ValueError):
                done += 1
                continue
            if n == 0:
                if not self.waiting_writable:
                    self.waiting_writable = True
                    self.loop.add_writer(self.fd, self._writable)
                break
            done += n
        del out[:done]
        del addrs[:done]
        return not out

    def _writable(self) -> None:
        if self.flush():
            self.loop.remove_writer(self.fd)
            self.waiting_writable = False

    def close(self) -> None:
        """Stop reading; send what is queued while the kernel takes it (the drain's last ACKs), then close."""
        self.loop.remove_reader(self.fd)
        if self.waiting_writable:
            self.loop.remove_writer(self.fd)
            self.waiting_writable = False
        self.flush()
        self.closed = True  # what the kernel did not take now is lost, as a device's retry expects
        self.out.clear()
        self.out_addrs.clear()
        self.sock.close()


async def open_udp(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, handle: HandleFn, max_datagram_bytes: int
) -> UdpIO:
    """:class:`BatchIO` when the native module is in use, else :class:`TransportIO`."""
    if hotpath.IMPL == "native":
        return BatchIO(loop, sock, handle, max_datagram_bytes)
    return await TransportIO.open(loop, sock, handle)
