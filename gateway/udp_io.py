"""The worker's UDP socket: datagrams in, answers out.

With the native module (``ibp_native.Receiver``) the worker reads its socket itself: one ``recvmmsg`` takes
up to 64 waiting datagrams, where the event loop's datagram transport makes one ``recvfrom`` and one
callback per datagram (about 2.5 µs each on this machine, a third of the worker's CPU at one reading per
datagram). Answers go out with ``sendto`` on the same non-blocking socket; one the kernel cannot take now
(EAGAIN: the send buffer is full) waits in a bounded queue that the loop flushes when the socket is
writable, as the transport's own buffer does. Without the native module, or with ``IBP_NATIVE=0``, the
event loop's transport does both (:class:`TransportIO`).
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections import deque
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
    """``recvmmsg`` through ``ibp_native.Receiver``, answers by ``sendto`` (module docstring)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sock: socket.socket, handle: HandleFn, max_datagram_bytes: int
    ) -> None:
        self.loop, self.sock, self.handle = loop, sock, handle
        self.fd = sock.fileno()
        sock.setblocking(False)
        # one byte more than the largest accepted datagram: a longer one arrives cut to that length, and
        # the handler's length check still calls it oversized
        self.rx: Any = hotpath.native_module().Receiver(SLOTS, min(max_datagram_bytes + 1, 65_536))
        self.queued: deque[tuple[bytes, Addr]] = deque()
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
        if self.queued:
            self._queue(datagram, addr)
            return
        try:
            self.sock.sendto(datagram, addr)
        except BlockingIOError:
            self._queue(datagram, addr)
            self.loop.add_writer(self.fd, self._writable)
        except OSError:  # an unreachable device is not the gateway's error; it retries
            pass

    def _queue(self, datagram: bytes, addr: Addr) -> None:
        if len(self.queued) >= MAX_QUEUED:
            self.dropped += 1
            return
        self.queued.append((datagram, addr))

    def _writable(self) -> None:
        while self.queued:
            datagram, addr = self.queued[0]
            try:
                self.sock.sendto(datagram, addr)
            except BlockingIOError:
                return
            except OSError:
                pass
            self.queued.popleft()
        self.loop.remove_writer(self.fd)

    def close(self) -> None:
        """Stop reading; send what is queued while the kernel takes it (the drain's last ACKs), then close."""
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        while self.queued:
            datagram, addr = self.queued.popleft()
            try:
                self.sock.sendto(datagram, addr)
            except OSError:
                break
        self.sock.close()


async def open_udp(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, handle: HandleFn, max_datagram_bytes: int
) -> UdpIO:
    """:class:`BatchIO` when the native module is in use, else :class:`TransportIO`."""
    if hotpath.IMPL == "native":
        return BatchIO(loop, sock, handle, max_datagram_bytes)
    return await TransportIO.open(loop, sock, handle)
