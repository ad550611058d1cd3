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
import hashlib
import hmac
import json
import random
import socket
import time
from typing import TYPE_CHECKING

from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.devices.state import _TIMEOUT, _WAKE, Device

if TYPE_CHECKING:
    from simulator.devices.persist import Store
    from simulator.devices.state import Counters
    from simulator.scenario import Scenario


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, fleet: Transport, index: int) -> None:
        self.fleet = fleet
        self.index = index
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.fleet.on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the gateway is not there. Devices keep buffering.
        self.fleet.counters.send_errors += 1


class Transport:
    """The ``Fleet``'s network side (a mixin: the state it uses is set up by ``Fleet.__post_init__``)."""

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
        endpoints: list[_Endpoint]
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
        loop = asyncio.get_running_loop()
        for i in range(self.nsock):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            sock.connect(self.addresses[i % len(self.addresses)])
            _, proto = await loop.create_datagram_endpoint(lambda i=i: _Endpoint(self, i), sock=sock)
            self.endpoints.append(proto)

    def close(self) -> None:
        for ep in self.endpoints:
            if ep.transport is not None:
                ep.transport.close()
        self.endpoints.clear()

    # ------------------------------------------------------------------ sending

    def payload(self, dev: Device, seq: int) -> bytes:
        return datagram.payload(self.run_id, self._payload_pad, dev.idx, seq)

    def _xmit(self, dev: Device, data: bytes) -> None:
        self.counters.datagrams += 1
        if len(data) > self.counters.max_datagram_bytes:
            self.counters.max_datagram_bytes = len(data)
        if self.loss and self.rng.random() < self.loss:
            self.counters.lost_by_fault += 1
            return
        tr = self.endpoints[dev.sock].transport
        if tr is None or tr.is_closing():
            self.counters.send_errors += 1
            return
        tr.sendto(data)

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
        readings = self._batch(dev, first)
        n = len(readings)
        if dev.attempt:
            self.counters.retransmits += 1
        self.counters.sent_readings += n
        dev.inflight_last = first + n - 1
        if dev.unanswered_since < 0:
            dev.unanswered_since = now
        self._xmit(dev, ibp.encode_data(dev.id, dev.key, first, readings))
        self._schedule(dev, now + self.ack_timeout, _TIMEOUT)

    def _batch(self, dev: Device, first: int) -> list[tuple[int, bytes]]:
        """The oldest readings that fit in one datagram: at most ``flush.batch_size``, and at most
        ``flush.max_datagram_bytes`` bytes (the first reading always goes: the fleet checked that it fits).

        The same rule as the firmware's sender: the device id's overhead, then readings while they fit.
        A retransmission after a timeout rebuilds the same batch: the same readings, the same bytes.
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
        if not self.online:
            return  # the network is down: answers are lost too
        if self.ack_loss and self.rng.random() < self.ack_loss:
            self.counters.acks_lost_by_fault += 1
            return
        try:
            resp = ibp.parse_response(data)
        except ibp.ProtocolError:
            self.counters.bad_answers += 1
            return
        if isinstance(resp, ibp.AuthFail):
            self.counters.auth_fail += 1  # the device times out and backs off; nothing is deleted
            return
        dev = self.by_id.get(resp.device_id)
        if dev is None or not hmac.compare_digest(
            hmac.digest(dev.key, data[: -ibp.TAG_LEN], hashlib.sha256), data[-ibp.TAG_LEN :]
        ):
            self.counters.bad_answers += 1
            return
        now = time.monotonic()
        dev.unanswered_since = -1.0  # the gateway takes this device's datagrams (acked or pushed back)
        if isinstance(resp, ibp.Busy):
            self.counters.busy += 1
            if dev.inflight_last >= 0:
                dev.inflight_last = -1
                wait = resp.retry_after_ms / 1000
                self._schedule(dev, now + wait + self.rng.random() * wait, _WAKE)
            return
        self._on_ack(dev, resp.ack_seq, now)

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
