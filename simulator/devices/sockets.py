"""The fleet's UDP sockets: each connected to one gateway, shared by the devices on it.

With the native module (``ibp_native``, ibp/native.py) a socket is read and written in batches: the loop
calls :class:`BatchLink` when the socket is readable and it takes up to 64 answers per ``recvmmsg``, parsed
and verified in the same native call against the fleet's ``DeviceBook`` (one Python call per answer to
parse it and another to check its tag were a sixth of the simulator's CPU at 100,000 devices); what
the devices send during one loop callback (a tick's generation, a batch of ACKs that lets devices send
their next batch) is queued and handed to the kernel by one ``sendmmsg`` per socket, where the event
loop's transport made one system call and one Python callback per datagram (a quarter of the simulator's
CPU, then another sixth for receiving). The queue needs no bound: a device has at most one datagram in
flight (stop-and-wait), so it never holds more than one per device. Where the kernel can segment UDP
(``UDP_SEGMENT``, Linux 4.18) the queue goes out with ``send_segments``: a run of equal-sized datagrams
(every one-reading datagram of a steady fleet is the same size) is one message that the kernel cuts into
the same datagrams, half the system time per reading of a steady fleet; a route that cannot segment (no checksum
offload, a segment over the path MTU) answers EIO or EINVAL once and the link goes back to ``sendmmsg``
of one message per datagram. Without the native module, or with
``IBP_NATIVE=0``, the loop's own datagram transport does both (:class:`TransportLink`).

Either way an error queued on the socket (ICMP port unreachable: the gateway is not there) counts as a
send error and the devices keep their readings. uvloop (libuv) stops watching a descriptor for good when
epoll reports an error on it (POLLERR), after one last callback: a connected socket that got one ICMP
error while the gateway restarted would never be read again, and its devices would send without ever
seeing an answer. So :class:`BatchLink` watches it again after every socket error.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any, Protocol

SLOTS = 64  # answers per recvmmsg
ROUNDS = 16  # recvmmsg calls per wakeup at most, so the tick loop runs between bursts
BUFFER_BYTES = 4 * 1024 * 1024
UDP_SEGMENT = 103  # linux/udp.h (the socket module has no name for it)
UDP_GRO = 104  # linux/udp.h, the receiving twin of UDP_SEGMENT
GRO_BYTES = 65_536  # a receive slot with UDP_GRO holds a whole coalesced run
# what a send of segmented messages answers where the route cannot segment them (module docstring)
SEGMENT_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOPROTOOPT})

OnDatagram = Callable[[bytes], None]
# verified answers (type, device index, value), then the AUTH_FAIL and unusable ones counted
OnAnswers = Callable[[list[tuple[int, int, int]], int, int], None]
OnError = Callable[[], None]


class Link(Protocol):
    def send(self, data: bytes) -> bool:
        """Queue or send one datagram; False when the socket is closed (nothing sent)."""
        ...

    def close(self) -> None: ...


def connected_socket(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_BYTES)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
    sock.bind(("0.0.0.0", 0))
    sock.setblocking(False)
    sock.connect(address)
    return sock


def can_segment(sock: socket.socket) -> bool:
    """True when this kernel knows ``UDP_SEGMENT`` on UDP sockets (whether the route can is seen on the
    first send)."""
    try:
        sock.getsockopt(socket.IPPROTO_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


def answer_receiver(native: Any) -> Any:
    """One ``Receiver`` for all of a fleet's links (the loop calls one at a time), its slots large enough
    for a UDP_GRO run of answers: 4 MiB once, where 64 KiB slots per link would be 4 MiB per socket."""
    return native.Receiver(SLOTS, GRO_BYTES, gro=True)


def enable_gro(sock: socket.socket) -> bool:
    """Ask the kernel to hand over a run of one sender's equal-sized datagrams as one buffer
    (``UDP_GRO``, Linux 5.0): the acking sink's segmented ACKs then cost one trip through the stack per
    run instead of one per answer. False where the kernel refuses (one datagram per slot, as before)."""
    try:
        sock.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: OnDatagram, on_error: OnError) -> None:
        self.on_datagram, self.on_error = on_datagram, on_error

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        self.on_error()


class TransportLink:
    """The event loop's datagram transport: one system call and one callback per datagram."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self.transport = transport

    @classmethod
    async def open(
        cls, loop: asyncio.AbstractEventLoop, sock: socket.socket, on_datagram: OnDatagram, on_error: OnError
    ) -> TransportLink:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(on_datagram, on_error), sock=sock
        )
        return cls(transport)

    def send(self, data: bytes) -> bool:
        if self.transport.is_closing():
            return False
        self.transport.sendto(data)
        return True

    def close(self) -> None:
        self.transport.close()


class BatchLink:
    """``recvmmsg`` and ``sendmmsg`` through ``ibp_native`` (module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        native: Any,
        on_datagram: OnDatagram,
        on_error: OnError,
        max_answer_bytes: int = 512,
        book: Any = None,
        on_answers: OnAnswers | None = None,
        rx: Any = None,
    ) -> None:
        self.loop, self.sock, self.on_datagram, self.on_error = loop, sock, on_datagram, on_error
        self.fd = sock.fileno()
        # a receiver shared by the fleet's links (answer_receiver), or one of its own
        self.rx = rx if rx is not None else native.Receiver(SLOTS, max_answer_bytes)
        # with the fleet's DeviceBook, a recvmmsg of answers is parsed and verified in the same call
        batched = book is not None and on_answers is not None
        self.book, self.on_answers = (book, on_answers) if batched else (None, None)
        self._take = self._take_answers if batched else self._take_datagrams
        self.native = native
        self.segmenting = can_segment(sock)  # until the route refuses a segmented message (flush)
        self.queue: list[bytes] = []
        self.flush_soon = False
        self.waiting_writable = False
        self.closed = False
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        take = self._take
        for round_ in range(ROUNDS):
            try:
                got = take()
            except OSError:  # ICMP port unreachable and friends, reported once
                self.on_error()
                self._watch_again()
                continue
            if got < SLOTS:
                if not got and round_ == 0:
                    # woken with nothing to read: an error a send took first (uvloop stopped watching)
                    self._watch_again()
                return

    def _take_datagrams(self) -> int:
        """One recvmmsg, each datagram to ``on_datagram``; returns how many came."""
        batch = self.rx.recv(self.fd)
        handle = self.on_datagram
        for data, _addr in batch:
            handle(data)
        return len(batch)

    def _take_answers(self) -> int:
        """One recvmmsg, parsed and verified against the book, to ``on_answers``; returns how many came."""
        answers, got, auth_fail, bad = self.rx.recv_answers(self.fd, self.book)
        if got:
            self.on_answers(answers, auth_fail, bad)  # type: ignore[misc]
        return got

    def _watch_again(self) -> None:
        """Register the reader anew: uvloop drops it after reporting a socket error (module docstring)."""
        if not self.closed:
            self.loop.remove_reader(self.fd)
            self.loop.add_reader(self.fd, self._readable)

    def send(self, data: bytes) -> bool:
        if self.closed:
            return False
        self.queue.append(data)
        if not self.flush_soon:
            self.flush_soon = True
            self.loop.call_soon(self.flush)
        return True

    def flush(self) -> None:
        """Hand the queue to the kernel; what it cannot take now waits for the socket to be writable."""
        self.flush_soon = False
        queue = self.queue
        done = 0
        while done < len(queue):
            send = self.native.send_segments if self.segmenting else self.native.send_many
            try:
                n = send(self.fd, queue, done)
            except OSError as e:
                if self.segmenting and e.errno in SEGMENT_REFUSED:
                    # the route cannot segment: one message per datagram from now on, nothing lost
                    self.segmenting = False
                    continue
                # an error queued on the socket: that datagram is lost, as with the transport
                self.on_error()
                self._watch_again()
                done += 1
                continue
            if n == 0:
                if not self.waiting_writable and not self.closed:
                    self.waiting_writable = True
                    self.loop.add_writer(self.fd, self._writable)
                break
            done += n
        del queue[:done]

    def _writable(self) -> None:
        self.loop.remove_writer(self.fd)
        self.waiting_writable = False
        self.flush()

    def close(self) -> None:
        """Send what is queued while the kernel takes it, stop reading, close."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        self.loop.remove_reader(self.fd)
        if self.waiting_writable:
            self.loop.remove_writer(self.fd)
        self.queue.clear()
        self.sock.close()
