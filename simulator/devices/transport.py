"""The fleet's transport: its UDP sockets, the IBP/1 datagrams it sends and the answers it reads.

One job: the wire. ``open()`` connects ``transport.sockets`` UDP sockets to each gateway (devices share
them round-robin, so device i talks to gateway i mod the number of gateways); ``_send`` builds a device's oldest unacked readings into one IBP/1 batch
(stop-and-wait, at most ``flush.batch_size`` readings and ``flush.max_datagram_bytes`` bytes, as the
firmware's sender), ``_on_timeout`` backs off (capped exponential, full jitter); ``on_datagram``
verifies an answer's tag with the device key, deletes only what an ACK covers and honours BUSY
retry-after. Legacy protocols send and forget. Part of ``Fleet`` (fleet.py), kept apart because the
protocol handling is its own concern: the tick loop (wheel.py) only says when.
"""

from __future__ import annotations

import asyncio
import gc
import json
import random
import time
from typing import TYPE_CHECKING, Any

from ibp import native
from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.devices.sockets import (
    BatchLink,
    Link,
    TransportLink,
    answer_receiver,
    connected_socket,
    enable_gro,
)
from simulator.devices.state import _TIMEOUT, _WAKE, Device

NATIVE, NATIVE_WHY = native.load()

if TYPE_CHECKING:
    from simulator.devices.persist import Store
    from simulator.devices.state import Counters
    from simulator.scenario import Scenario


GC_GEN0_THRESHOLD = 50_000


def settle_heap() -> tuple[int, int, int]:
    """Keep the cyclic collector off the fleet: 100,000 devices are a million long-lived objects (the
    device, its buffer, the wheel's entries) that every full collection walked, a few hundred ms at a time
    (the tick loop ran late by that much), for no garbage: the fleet makes no reference cycles. What is
    alive when the sockets open is frozen out of the walks, and the young generation is collected every
    50,000 allocations instead of 2,000 (the gateway's worker does the same). Returns the thresholds it
    replaced, for a caller that gives them back (``restore_heap``: the bench's fleet runs inside pytest)."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, before[1], before[2])
    return before


def restore_heap(thresholds: tuple[int, int, int]) -> None:
    """Undo ``settle_heap``: the frozen objects are walked again, at the thresholds it replaced."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Transport:
    """The ``Fleet``'s network side (a mixin: the state it uses is set up by ``Fleet.__post_init__``)."""

    # ``ibp_native`` (ibp/native.py) builds the DATA datagrams, parses the answers and batches the system
    # calls; None: the pure-Python reference (datagram.py, ibp/protocol.py) and the loop's transport. Set
    # it to None on a fleet before open() to run that one without the native module.
    native: Any = NATIVE
    # ``ibp_native.DeviceBook`` of the devices' ids and keyed HMACs (built by the Fleet for IBP/1 with the
    # native module): it signs the DATA datagrams and, on a BatchLink, reads whole batches of answers
    book: Any = None

    if TYPE_CHECKING:  # what the transport uses of the rest of the Fleet
        scenario: Scenario
        host: str
        port: int
        addresses: list[tuple[str, int]]
        run_id: str
        store: Store | None
        counters: Counters
        online: bool
        buffered: int
        rng: random.Random
        protocol: str
        devices: list[Device]
        by_id: dict[str, Device]
        nsock: int
        links: list[Link]
        ack_timeout: float
        backoff_base: float
        backoff_cap: float
        batch: int
        max_bytes: int
        min_gap: float
        loss: float
        ack_loss: float
        _payload_pad: int

        def _schedule(self, dev: Device, at: float, kind: int) -> None: ...
        def _cancel(self, dev: Device) -> None: ...

    # ------------------------------------------------------------------ datagram sizes

    def _check_fits(self) -> None:
        """Refuse a fleet whose one reading exceeds the byte cap (a run id longer than the validator assumed)."""
        if self.protocol != "ibp1" or not self.devices:
            return
        dev = self.devices[0]
        one = datagram.data_overhead(dev.id) + datagram.reading_size(self.payload(dev, dev.first_seq))
        if one > self.max_bytes:
            raise ValueError(
                f"flush.max_datagram_bytes {self.max_bytes} cannot hold one reading of run {self.run_id!r} "
                f"(needs {one} bytes): raise it or lower reading.payload_bytes"
            )

    def full_batch(self) -> int:
        """Readings in a full datagram of this fleet: flush.batch_size, or fewer when the bytes cap it."""
        if not self.devices:
            return 0
        return datagram.readings_per_datagram(
            self.batch,
            self.max_bytes,
            len(self.devices[0].id.encode()),
            self.scenario.reading.payload_bytes,
            len(self.run_id),
        )

    # ------------------------------------------------------------------ sockets

    async def open(self) -> None:
        settle_heap()
        loop = asyncio.get_running_loop()
        if self.native is None:
            self.book = None  # the pure-Python reference all through
        # a fault that loses answers one by one draws per answer: those go through on_datagram
        batch_answers = self.book is not None and not self.ack_loss
        rx = answer_receiver(self.native) if batch_answers else None
        for i in range(self.nsock):
            sock = connected_socket(self.addresses[i % len(self.addresses)])
            link: Link
            if rx is not None:
                enable_gro(sock)
            if self.native is not None:
                link = BatchLink(
                    loop,
                    sock,
                    self.native,
                    self.on_datagram,
                    self._on_socket_error,
                    book=self.book if batch_answers else None,
                    on_answers=self.on_answers if batch_answers else None,
                    rx=rx,
                )
            else:
                link = await TransportLink.open(loop, sock, self.on_datagram, self._on_socket_error)
            self.links.append(link)

    def send_path(self) -> str:
        """How this fleet's datagrams leave: ``segmented`` (runs of one size as segmented messages),
        ``sendmmsg`` (one message per datagram: the route refused to segment), ``transport`` (the event
        loop's, no native module), or ``segmented on K of N sockets`` when some routes refused."""
        batched = [link for link in self.links if isinstance(link, BatchLink)]
        if not batched:
            return "transport"
        k = sum(link.segmenting for link in batched)
        if k == len(batched):
            return "segmented"
        return "sendmmsg" if k == 0 else f"segmented on {k} of {len(batched)} sockets"

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links.clear()

    def _on_socket_error(self) -> None:
        # ICMP port unreachable and friends: the gateway is not there. Devices keep buffering.
        self.counters.send_errors += 1

    # ------------------------------------------------------------------ sending

    def payload(self, dev: Device, seq: int) -> bytes:
        return datagram.payload(self.run_id, self._payload_pad, dev.idx, seq)

    def _xmit(self, dev: Device, data: bytes) -> None:
        c = self.counters
        c.datagrams += 1
        if len(data) > c.max_datagram_bytes:
            c.max_datagram_bytes = len(data)
        if self.loss and self.rng.random() < self.loss:
            c.lost_by_fault += 1
            return
        if not self.links[dev.sock].send(data):
            c.send_errors += 1

    def _send(self, dev: Device, now: float) -> None:
        """Send the oldest unacked readings as one batch (or wait for the per-device rate cap)."""
        if not self.online or not dev.buf or dev.inflight_last >= 0:
            return
        if now - dev.last_send < self.min_gap:
            self._schedule(dev, dev.last_send + self.min_gap, _WAKE)
            return
        dev.last_send = now
        if self.protocol != "ibp1":
            self._send_legacy(dev, now)
            return
        first = dev.base_seq
        book = self.book
        if book is not None:
            data, n = book.data(dev.idx, first, dev.buf)
        else:
            readings = self._batch(dev, first)
            n = len(readings)
            data = ibp.encode_data(dev.id, dev.key, first, readings)
        c = self.counters
        if dev.attempt:
            c.retransmits += 1
        c.sent_readings += n
        dev.inflight_last = first + n - 1
        if dev.unanswered_since < 0:
            dev.unanswered_since = now
        self._xmit(dev, data)
        self._schedule(dev, now + self.ack_timeout, _TIMEOUT)

    def _batch(self, dev: Device, first: int) -> list[tuple[int, bytes]]:
        """The oldest readings that fit in one datagram: at most ``flush.batch_size``, and at most
        ``flush.max_datagram_bytes`` bytes (the first reading always goes: the fleet checked that it fits).

        The same rule as the firmware's sender: the device id's overhead, then readings while they fit.
        A retransmission after a timeout rebuilds the same batch: the same readings, the same bytes.
        The reference of ``ibp_native.DeviceBook.data`` and ``device_data`` (tests/simulator/test_native_device.py).
        """
        buf = dev.buf
        size = datagram.data_overhead(dev.id)
        readings: list[tuple[int, bytes]] = []
        for i in range(min(self.batch, len(buf))):
            payload = self.payload(dev, first + i)
            size += datagram.reading_size(payload)
            if readings and size > self.max_bytes:
                break
            readings.append((buf[i], payload))
        return readings

    def _send_legacy(self, dev: Device, now: float) -> None:
        """Legacy devices cannot be acked: send and forget, as the original pilot did."""
        n = min(self.batch, len(dev.buf))
        for _ in range(n):
            ts = dev.buf.popleft()
            seq = dev.base_seq
            dev.base_seq += 1
            payload = self.payload(dev, seq)
            if self.protocol == "legacy-bin":
                data = ibp.encode_legacy_binary(dev.id, seq, json.loads(payload))
            else:
                data = ibp.encode_legacy_json(dev.id, seq, ts / 1000, json.loads(payload))
            self._xmit(dev, data)
        if self.store is not None:
            self.store.acked(dev.idx, dev.base_seq)  # sent = done for legacy: the journal forgets them
        self.buffered -= n
        self.counters.sent_readings += n
        self.counters.acked += n  # "acked" = handed to the network: legacy has no acknowledgement
        if dev.buf:
            self._schedule(dev, now + self.min_gap, _WAKE)

    def _on_timeout(self, dev: Device, now: float) -> None:
        self.counters.timeouts += 1
        dev.inflight_last = -1
        dev.attempt += 1
        delay = self.rng.random() * min(self.backoff_cap, self.backoff_base * (2 ** min(dev.attempt, 30)))
        self._schedule(dev, now + delay, _WAKE)

    # ------------------------------------------------------------------ answers

    def on_datagram(self, data: bytes) -> None:
        """One answer as it came (the loop's transport, or a fault that loses answers one by one)."""
        if not self.online:
            return  # the network is down: answers are lost too
        if self.ack_loss and self.rng.random() < self.ack_loss:
            self.counters.acks_lost_by_fault += 1
            return
        book = self.book
        answer = book.check(data) if book is not None else datagram.judge_answer(data, self.by_id)
        if answer == datagram.AUTH_FAIL_ANSWER:
            self.on_answers([], 1, 0)
        elif answer == datagram.BAD_ANSWER:
            self.on_answers([], 0, 1)
        else:
            self.on_answers([answer], 0, 0)

    def on_answers(self, answers: list[tuple[int, int, int]], auth_fail: int, bad: int) -> None:
        """Verified answers ``(type, device index, value)`` (datagram.judge_answer), in arrival order,
        and how many others came: AUTH_FAIL (the device times out and backs off; nothing is deleted) and
        unusable ones (malformed, unknown device, wrong tag)."""
        if not self.online:
            return  # the network is down: answers are lost too
        c = self.counters
        c.auth_fail += auth_fail
        c.bad_answers += bad
        if not answers:
            return
        now = time.monotonic()
        devices = self.devices
        for mtype, idx, value in answers:
            dev = devices[idx]
            dev.unanswered_since = -1.0  # the gateway takes this device's datagrams (acked or pushed back)
            if mtype == ibp.T_ACK:
                self._on_ack(dev, value, now)
            else:
                self._on_busy(dev, value, now)

    def _on_busy(self, dev: Device, retry_after_ms: int, now: float) -> None:
        self.counters.busy += 1
        if dev.inflight_last >= 0:
            dev.inflight_last = -1
            wait = retry_after_ms / 1000
            self._schedule(dev, now + wait + self.rng.random() * wait, _WAKE)

    def _on_ack(self, dev: Device, ack_seq: int, now: float) -> None:
        n = dev.ack_to(ack_seq + 1)
        if n > 0:
            self.buffered -= n
            self.counters.acked += n
            if self.store is not None:
                self.store.acked(dev.idx, dev.base_seq)
        if dev.inflight_last >= 0 and ack_seq >= dev.inflight_last:
            dev.inflight_last = -1
            dev.attempt = 0
            self._cancel(dev)
            if dev.buf:
                self._send(dev, now)
