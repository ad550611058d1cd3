"""A minimal IBP/1 device fleet in one asyncio process, for the gateway's own tests and ``make bench``.

Each device follows docs/protocol.md "Device rules": stop-and-wait (one batch in flight, always the oldest
unacked readings), retransmission on timeout with capped exponential backoff and full jitter, waiting on
BUSY. ``drop_rate`` throws away that share of datagrams in both directions on purpose (a lossy network).
Devices are spread over ``sockets`` UDP sockets, so SO_REUSEPORT spreads them over the gateway's workers.
``prebuild()`` encodes every full batch's datagram before the run (as a device's firmware holds the bytes
it will retransmit), so that the measured run costs the sender only its sends, waits and answer checks:
``make bench`` needs a load generator that costs well under the gateway's CPU per reading. A batch that
does not start where a pre-built one does (an ACK that covered part of a datagram) is encoded then.
With the native module the sockets are the simulator's batched ones (simulator/devices/sockets.py:
``sendmmsg`` of what the devices send in one loop callback, ``recvmmsg`` of the answers) and answers are
parsed and verified by ``ibp_native``.
``interval_s`` paces the fleet: a device sends a new batch at most every ``interval_s`` (retransmissions are
not delayed), and ``ramp_s`` spreads the devices' first sends evenly over that time. A paced fleet offers a
known load, ``devices x batch / interval_s`` readings/s, as long as its ACKs come back within the interval:
``make bench`` measures the ACK latency at half its maximum that way.
The full simulator (many hosts, scenarios) lives in ``simulator/``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from ibp import native, protocol
from simulator.devices.sockets import BatchLink, Link, TransportLink, connected_socket
from simulator.devices.transport import restore_heap, settle_heap

NATIVE, _ = native.load()


@dataclass(slots=True, eq=False)
class Device:
    device_id: str
    key: bytes
    first_seq: int
    count: int
    acked: int  # highest acked sequence (first_seq - 1 when nothing is acked)
    sock: int
    event: asyncio.Event = field(default_factory=asyncio.Event)
    busy_until: float = 0.0
    sent_at: float = 0.0
    latencies: list[float] = field(default_factory=list)
    prebuilt: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # first seq -> (readings, datagram)

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1


@dataclass
class FleetResult:
    devices: int = 0
    readings: int = 0
    datagrams_sent: int = 0
    datagrams_dropped: int = 0
    answers_dropped: int = 0
    retransmissions: int = 0
    busy: int = 0
    auth_fail: int = 0
    acks: int = 0
    bad_answers: int = 0
    fully_acked: int = 0
    elapsed_s: float = 0.0
    ack_latencies_s: list[float] = field(default_factory=list)
    final_acks: dict[str, int] = field(default_factory=dict)

    @property
    def acked_readings_per_s(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s else 0.0


class Fleet:
    def __init__(
        self,
        host: str,
        port: int,
        keys: dict[str, bytes],
        *,
        readings_per_device: int,
        batch: int = 20,
        first_seq: int = 1,
        drop_rate: float = 0.0,
        sockets: int = 32,
        run_id: str = "test",
        ack_timeout_s: float = 0.5,
        backoff_cap_s: float = 2.0,
        payload_bytes: int = 0,
        seed: int | None = None,
        max_attempts: int = 10_000,
        interval_s: float = 0.0,
        ramp_s: float = 0.0,
    ) -> None:
        self.addr = (host, port)
        self.batch = batch
        self.drop_rate = drop_rate
        self.run_id = run_id
        self.ack_timeout_s = ack_timeout_s
        self.backoff_cap_s = backoff_cap_s
        self.rng = random.Random(seed)
        self.max_attempts = max_attempts
        self.interval_s = interval_s
        self.ramp_s = ramp_s
        self.n_sockets = sockets
        self.devices = {
            device_id: Device(device_id, key, first_seq, readings_per_device, first_seq - 1, i % sockets)
            for i, (device_id, key) in enumerate(keys.items())
        }
        pad = "x" * payload_bytes
        self._payload = (
            (lambda seq: json.dumps({"run": run_id, "n": seq, "pad": pad}).encode()) if pad else None
        )
        self.result = FleetResult(devices=len(self.devices))
        self._links: list[Link] = []
        self._stop = False
        self.native = NATIVE  # None: the pure-Python answer check and the loop's transport

    def payload(self, device: Device, seq: int) -> bytes:
        if self._payload is not None:
            return self._payload(seq)
        return b'{"run":"%s","n":%d,"t":21.5}' % (self.run_id.encode(), seq)

    def _answer(self, data: bytes) -> None:
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self.result.answers_dropped += 1
            return
        nat = self.native
        try:
            mtype, device_id, value, tag_at = (
                nat.parse_answer if nat is not None else protocol.answer_fields
            )(data)
        except protocol.ProtocolError:
            self.result.bad_answers += 1
            return
        if mtype == protocol.T_AUTH_FAIL:
            self.result.auth_fail += 1
            return
        device = self.devices.get(device_id)
        if device is None or not (nat.verify if nat is not None else protocol.verify_answer)(
            device.key, data, tag_at
        ):
            self.result.bad_answers += 1
            return
        if mtype == protocol.T_ACK:
            self.result.acks += 1
            if value > device.acked:
                device.acked = min(value, device.last_seq)
                device.latencies.append(time.monotonic() - device.sent_at)
                device.event.set()
        else:
            self.result.busy += 1
            device.busy_until = time.monotonic() + value / 1000.0
            device.event.set()

    def prebuild(self) -> int:
        """Encode each device's batches (first_seq, first_seq + batch, ...) now; returns how many."""
        built = 0
        for device in self.devices.values():
            first = device.acked + 1
            while first <= device.last_seq:
                n = min(self.batch, device.last_seq - first + 1)
                device.prebuilt[first] = (n, self._encode(device, first, n))
                first += n
                built += 1
        return built

    def _datagram(self, device: Device) -> bytes:
        first = device.acked + 1
        n = min(self.batch, device.last_seq - device.acked)
        cached = device.prebuilt.get(first)
        if cached is not None and cached[0] == n:
            return cached[1]
        return self._encode(device, first, n)

    def _encode(self, device: Device, first: int, n: int) -> bytes:
        now_ms = int(time.time() * 1000)
        readings = [(now_ms, self.payload(device, seq)) for seq in range(first, first + n)]
        return protocol.encode_data(device.device_id, device.key, first, readings)

    async def _run_device(self, device: Device, start_delay_s: float = 0.0) -> None:
        attempt = 0
        link = self._links[device.sock]
        if start_delay_s > 0:
            await asyncio.sleep(start_delay_s)
        next_new = 0.0  # monotonic time before which no new batch leaves (interval_s)
        while device.acked < device.last_seq and not self._stop:
            now = time.monotonic()
            if attempt == 0 and next_new > now:
                await asyncio.sleep(next_new - now)
                now = time.monotonic()
            if attempt == 0 and self.interval_s:
                next_new = max(next_new, now) + self.interval_s
            if device.busy_until > now:
                await asyncio.sleep(device.busy_until - now + self.rng.uniform(0, 0.05))
                device.busy_until = 0.0
            datagram = self._datagram(device)
            before = device.acked
            device.event.clear()
            device.sent_at = time.monotonic()
            self.result.datagrams_sent += 1
            if attempt:
                self.result.retransmissions += 1
            if self.drop_rate and self.rng.random() < self.drop_rate:
                self.result.datagrams_dropped += 1
            else:
                link.send(datagram)
            timeout = (
                self.ack_timeout_s
                if attempt == 0
                else self.rng.uniform(
                    self.ack_timeout_s / 2, min(self.backoff_cap_s, self.ack_timeout_s * 2**attempt)
                )
            )
            try:
                async with asyncio.timeout(timeout):  # no extra task per wait, unlike wait_for on 3.11
                    await device.event.wait()
            except TimeoutError:
                pass
            if device.acked > before:
                attempt = 0
            else:
                attempt += 1
                if attempt > self.max_attempts:
                    return

    async def run(self, timeout_s: float = 300.0) -> FleetResult:
        loop = asyncio.get_running_loop()
        for _ in range(self.n_sockets):  # each connected to the gateway; batched sends and receives natively
            sock = connected_socket(self.addr)
            link: Link
            if self.native is not None:
                link = BatchLink(loop, sock, self.native, self._answer, self._socket_error)
            else:
                link = await TransportLink.open(loop, sock, self._answer, self._socket_error)
            self._links.append(link)
        # the fleet and its pre-built datagrams out of the collector's walks while it runs: a full collection
        # stalled this loop for tens of ms and the devices' measured ACK latency with it (its loop's p99 lag
        # at half load fell from 16-25 to 11-19 ms, 2026-12-07)
        thresholds = settle_heap()
        started = time.monotonic()
        n = len(self.devices)
        tasks = [
            asyncio.create_task(self._run_device(d, self.ramp_s * i / n if n else 0.0))
            for i, d in enumerate(self.devices.values())
        ]
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            self._stop = True
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for link in self._links:
                link.close()
            self._links.clear()
            restore_heap(thresholds)
        r = self.result
        r.elapsed_s = time.monotonic() - started
        r.fully_acked = sum(1 for d in self.devices.values() if d.acked >= d.last_seq)
        r.readings = sum(d.acked - d.first_seq + 1 for d in self.devices.values())
        r.final_acks = {d.device_id: d.acked for d in self.devices.values()}
        r.ack_latencies_s = [x for d in self.devices.values() for x in d.latencies]
        return r

    def stop(self) -> None:
        self._stop = True

    def _socket_error(self) -> None:
        pass  # ICMP port unreachable: the gateway is not there (yet); devices time out and retry


def fleet_keys(master_key: bytes, count: int, run_id: str, prefix: str = "sim-") -> dict[str, bytes]:
    """``count`` fleet device ids ``sim-<run>-<n>`` and their derived keys."""
    ids = [f"{prefix}{run_id}-{i:06d}" for i in range(count)]
    return {device_id: protocol.derive_device_key(master_key, device_id) for device_id in ids}
