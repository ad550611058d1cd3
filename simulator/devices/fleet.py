"""Many simulated devices in one asyncio process, without a task or timer per device.

Readings are generated in time slots: the reading period is cut into slots of about 10 ms and every
device belongs to one slot, so one tick touches only the devices of that slot. Retransmission, BUSY
and rate-cap waits go into a hashed timing wheel (a dict from tick number to the devices due then);
a device has at most one pending entry, and stale entries are skipped by a generation counter.

Each device keeps a bounded store-and-forward buffer of its unacked readings (a deque of device
timestamps; the sequence of entry i is ``base_seq + i``), sends the oldest readings as one IBP/1 batch
(stop-and-wait; at most ``flush.batch_size`` readings and ``flush.max_datagram_bytes`` bytes, as the
firmware's sender), deletes only what an ACK covers, retransmits on timeout with capped exponential
backoff and full jitter, and honours BUSY retry-after. See docs/simulator.md.

With a state store attached (``Fleet.store``, agent ``--state-dir``: simulator/devices/persist.py) every change
of device state is journaled: a tick first generates, then commits the journal (fsync), and only then
sends, so no reading leaves the host before it is on disk; acks, drops and network switches are
journaled too, and ``checkpoint()`` compacts the journal into a snapshot (every ``CHECKPOINT_S``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import random
import socket
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.scenario import Scenario

if TYPE_CHECKING:
    from simulator.devices.persist import Store

TICK_S = 0.01
CHECKPOINT_S = 5.0  # compaction period of the state store (journal -> snapshot), at least
SEQ_EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z

# pending timer kinds
_NONE, _TIMEOUT, _WAKE = 0, 1, 2


def start_sequence(now_s: float | None = None) -> int:
    """First sequence of a run: deciseconds since 2025-01-01.

    Devices generate at most 10 readings/s (the scenario enforces it), so a later run always starts
    above every sequence an earlier run used: per-device sequences never repeat, even across runs.
    """
    now = time.time() if now_s is None else now_s
    return int((now - SEQ_EPOCH_S) * 10)


def device_ids(prefix: str, total: int, agent_index: int, agent_count: int) -> list[str]:
    """The ids of this agent's share of the fleet: contiguous, disjoint across agents."""
    if not 0 <= agent_index < agent_count:
        raise ValueError(f"agent index {agent_index} must be in 0..{agent_count - 1}")
    lo = agent_index * total // agent_count
    hi = (agent_index + 1) * total // agent_count
    width = datagram.id_width(total)
    return [f"{prefix}{i:0{width}d}" for i in range(lo, hi)]


class Device:
    __slots__ = (
        "attempt",
        "base_seq",
        "buf",
        "dropped",
        "drops",
        "first_seq",
        "gen",
        "id",
        "idx",
        "inflight_last",
        "key",
        "last_send",
        "next_seq",
        "outage_end",
        "outage_first",
        "pending",
        "sock",
        "unanswered_since",
    )

    def __init__(self, idx: int, device_id: str, key: bytes, first_seq: int, sock: int) -> None:
        self.idx = idx
        self.id = device_id
        self.key = key
        self.sock = sock
        self.first_seq = first_seq
        self.next_seq = first_seq  # sequence of the next reading generated
        self.base_seq = first_seq  # sequence of buf[0]
        self.buf: deque[int] = deque()  # device timestamps (ms) of unacked readings
        self.inflight_last = -1
        self.attempt = 0
        self.gen = 0
        self.pending = _NONE
        self.last_send = 0.0
        self.dropped = 0
        self.drops: list[list[int]] = []  # [first, last] sequence ranges dropped on overflow
        self.outage_first = -1
        self.outage_end = -1
        self.unanswered_since = -1.0  # monotonic time of its first send the gateway has not answered yet

    # The buffer's state changes, shared by the fleet and the journal replay (simulator/devices/persist.py).

    def add(self, ts: int, capacity: int, drop_oldest: bool) -> int:
        """Store a new reading; returns 0 (stored), 1 (stored, the oldest dropped) or 2 (refused).

        A refused reading (drop-newest on a full buffer) takes no sequence: the buffer's sequences stay
        contiguous (buf[i] is base_seq + i), and the refusal is counted, not numbered.
        """
        if len(self.buf) < capacity:
            self.next_seq += 1
            self.buf.append(ts)
            return 0
        self.dropped += 1
        if not drop_oldest:
            return 2
        self.next_seq += 1
        self._note_drop(self.base_seq)
        self.buf.popleft()
        self.base_seq += 1
        self.buf.append(ts)
        return 1

    def ack_to(self, base_seq: int) -> int:
        """Delete the readings below ``base_seq``; returns how many."""
        n = min(base_seq - self.base_seq, len(self.buf))
        if n <= 0:
            return 0
        buf = self.buf
        for _ in range(n):
            buf.popleft()
        self.base_seq += n
        return n

    def went_offline(self) -> None:
        self.outage_first = self.next_seq
        self.outage_end = -1

    def went_online(self) -> None:
        self.outage_end = self.next_seq

    def _note_drop(self, seq: int) -> None:
        drops = self.drops
        if drops and drops[-1][1] == seq - 1:
            drops[-1][1] = seq
        else:
            drops.append([seq, seq])


@dataclass
class Counters:
    generated: int = 0
    datagrams: int = 0
    sent_readings: int = 0
    acked: int = 0
    retransmits: int = 0
    timeouts: int = 0
    busy: int = 0
    auth_fail: int = 0
    bad_answers: int = 0
    send_errors: int = 0
    dropped_overflow: int = 0
    lost_by_fault: int = 0
    acks_lost_by_fault: int = 0
    agent_restarts: int = 0  # times this run was resumed from the agent's state dir
    max_datagram_bytes: int = 0  # the largest datagram sent (compare with the gateway's max_datagram_bytes)


@dataclass
class Sample:
    t: float
    generated: int
    datagrams: int
    sent_readings: int
    acked: int
    buffered: int
    retransmits: int
    lag_ms: float


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, fleet: Fleet, index: int) -> None:
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


@dataclass
class Fleet:
    """The devices of one simulator process and the loop that drives them."""

    scenario: Scenario
    host: str
    port: int
    run_id: str
    master_key: bytes | None
    agent_index: int = 0
    agent_count: int = 1
    seed: int | None = None
    counters: Counters = field(default_factory=Counters)
    samples: list[Sample] = field(default_factory=list)
    online: bool = True
    generating: bool = True
    buffered: int = 0
    max_lag_ms: float = 0.0
    store: Store | None = None  # the durable journal + snapshots (agent --state-dir); None: RAM only
    run_state: dict[str, Any] = field(default_factory=dict)  # the runner's progress, kept in snapshots
    last_alive: float | None = None  # restored: unix time of the newest state on disk

    def __post_init__(self) -> None:
        scn = self.scenario
        self.protocol = scn.transport.protocol
        if self.protocol == "ibp1" and not self.master_key:
            raise ValueError(
                "IBP/1 needs the fleet master key (--master-key-file, --registry or IBP_MASTER_KEY)"
            )
        self.rng = random.Random(self.seed)
        ids = device_ids(scn.devices.id_prefix, scn.devices.count, self.agent_index, self.agent_count)
        self.first_seq = start_sequence()
        nsock = max(1, min(scn.transport.sockets, len(ids)))
        key_of = (
            (lambda d: ibp.derive_device_key(self.master_key, d)) if self.master_key else (lambda d: b"")  # type: ignore[arg-type]
        )
        self.devices = [Device(i, d, key_of(d), self.first_seq, i % nsock) for i, d in enumerate(ids)]
        self.by_id = {d.id: d for d in self.devices}
        self.nsock = nsock
        period = 1.0 / scn.reading.rate_hz
        self.nslots = max(1, round(period / TICK_S))
        self.slot_len = period / self.nslots
        self.slots: list[list[Device]] = [[] for _ in range(self.nslots)]
        for d in self.devices:
            self.slots[d.idx % self.nslots].append(d)
        self.slot_idx = [array("I", [d.idx for d in slot]) for slot in self.slots]  # for the journal
        self.wheel: dict[int, list[tuple[Device, int]]] = {}
        self.endpoints: list[_Endpoint] = []
        self.ack_timeout = scn.transport.ack_timeout_ms / 1000
        self.backoff_base = scn.transport.backoff_base_ms / 1000
        self.backoff_cap = scn.transport.backoff_cap_ms / 1000
        self.batch = scn.flush.batch_size
        self.max_bytes = scn.flush.max_datagram_bytes
        self.min_gap = 1.0 / scn.flush.max_datagrams_per_s
        self.jitter = scn.flush.jitter_ms / 1000
        self.capacity = scn.devices.buffer_capacity
        self.drop_oldest = scn.devices.overflow == "drop-oldest"
        self.loss = scn.faults.loss_percent / 100
        self.ack_loss = scn.faults.ack_loss_percent / 100
        self._payload_pad = datagram.pad_for(scn.reading.payload_bytes, len(self.run_id))
        self._check_fits()
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._stopping = False
        self._wheel_tick = int(self._mono0 / TICK_S)
        self._gen_start = self._mono0
        self._gen_k = 0
        self._clock_started = False
        self._transitions: list[tuple[float, bool]] = []  # (monotonic time, online) applied by the tick loop

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

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for i in range(self.nsock):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
            sock.bind(("0.0.0.0", 0))
            sock.setblocking(False)
            sock.connect((self.host, self.port))
            _, proto = await loop.create_datagram_endpoint(lambda i=i: _Endpoint(self, i), sock=sock)
            self.endpoints.append(proto)

    def close(self) -> None:
        for ep in self.endpoints:
            if ep.transport is not None:
                ep.transport.close()
        self.endpoints.clear()

    def stop(self) -> None:
        self._stopping = True

    def wall(self, mono: float) -> float:
        return self._wall0 + (mono - self._mono0)

    def mono(self, wall: float) -> float:
        return self._mono0 + (wall - self._wall0)

    def start_clock(self, mono: float) -> None:
        """Generation slots count from ``mono`` (offset by half a slot so no reading falls on a phase edge)."""
        self._gen_start = mono + self.slot_len / 2
        self._gen_k = 0
        self._clock_started = True

    async def run(self) -> None:
        """Drive generation slots and the timing wheel until stop(); one tick every ~10 ms."""
        now = time.monotonic()
        if not self._clock_started:
            self.start_clock(now)
        next_sample = now + 1.0
        next_checkpoint = now + CHECKPOINT_S
        lag_window = 0.0
        while not self._stopping:
            now = time.monotonic()
            lag_window = max(lag_window, self._generate_due(now, now))
            self._fire_wheel(now)
            if now >= next_sample:
                self.samples.append(self._sample(now, lag_window))
                self.max_lag_ms = max(self.max_lag_ms, lag_window * 1000)
                lag_window = 0.0
                next_sample += 1.0
            if self.store is not None:
                self.store.commit()  # acks of this tick: written, synced with the next readings
                if now >= next_checkpoint:
                    self.checkpoint()
                    # a huge fleet's snapshot costs the loop time: at most ~5 % of it
                    next_checkpoint = now + max(CHECKPOINT_S, 20 * (time.monotonic() - now))
            await asyncio.sleep(max(0.0, TICK_S - (time.monotonic() - now)))
        self.samples.append(self._sample(time.monotonic(), lag_window))
        if self.store is not None:
            self.store.commit(sync=True)

    def _sample(self, now: float, lag: float) -> Sample:
        c = self.counters
        return Sample(
            round(self.wall(now), 3),
            c.generated,
            c.datagrams,
            c.sent_readings,
            c.acked,
            self.buffered,
            c.retransmits,
            round(lag * 1000, 1),
        )

    # ------------------------------------------------------------------ generation

    def _generate_due(self, upto: float, now: float) -> float:
        """Generate the readings of every slot due before ``upto``; returns how late the oldest one was (s)."""
        worst = 0.0
        if not self.generating:
            self._apply_transitions(upto)
            return 0.0
        store = self.store
        to_send: list[Device] = []
        while True:
            due = self._gen_start + self._gen_k * self.slot_len
            self._apply_transitions(min(due, upto))
            if due >= upto:
                break
            worst = max(worst, now - due)
            ts = int(self.wall(due) * 1000)
            k = self._gen_k % self.nslots
            if store is not None:
                store.generated(ts, self.slot_idx[k])
            for dev in self.slots[k]:
                if self._store_reading(dev, ts):
                    to_send.append(dev)
            self._gen_k += 1
        if store is not None:
            store.commit()  # durable (fsync'd) before any of these readings is sent
        for dev in to_send:
            self._send(dev, now)
        return worst

    def _new_reading(self, dev: Device, ts: int, now: float) -> None:
        """Generate one reading outside the slot loop (tests, capacity pre-fill) and send it if due."""
        if self.store is not None:
            self.store.generated(ts, array("I", [dev.idx]))
        if self._store_reading(dev, ts):
            if self.store is not None:
                self.store.commit()
            self._send(dev, now)

    def _store_reading(self, dev: Device, ts: int) -> bool:
        """Put a new reading into the device's buffer; True when the device should send now."""
        self.counters.generated += 1
        outcome = dev.add(ts, self.capacity, self.drop_oldest)
        if outcome:
            self.counters.dropped_overflow += 1
            if outcome == 2:
                return False
        else:
            self.buffered += 1
        return self.online and dev.pending == _NONE and dev.inflight_last < 0

    def payload(self, dev: Device, seq: int) -> bytes:
        return datagram.payload(self.run_id, self._payload_pad, dev.idx, seq)

    # ------------------------------------------------------------------ sending

    def _schedule(self, dev: Device, at: float, kind: int) -> None:
        dev.gen += 1
        dev.pending = kind
        tick = max(int(at / TICK_S), self._wheel_tick)
        self.wheel.setdefault(tick, []).append((dev, dev.gen))

    def _cancel(self, dev: Device) -> None:
        dev.gen += 1
        dev.pending = _NONE

    def _fire_wheel(self, now: float) -> None:
        current = int(now / TICK_S)
        while self._wheel_tick <= current:
            due = self.wheel.pop(self._wheel_tick, None)
            self._wheel_tick += 1
            if not due:
                continue
            for dev, gen in due:
                if gen != dev.gen:
                    continue  # superseded by a later schedule or a cancel
                kind = dev.pending
                dev.pending = _NONE
                if kind == _TIMEOUT:
                    self._on_timeout(dev, now)
                else:
                    self._send(dev, now)

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

    # ------------------------------------------------------------------ control

    def schedule_online(self, online: bool, at: float) -> None:
        """Switch the network at monotonic time ``at`` exactly (a phase edge), applied by the tick loop.

        Every reading due before ``at`` is generated in the old state and every later one in the new,
        however late the loop runs, so a 60 s outage of 1,000 devices at 1 reading/s buffers exactly
        60,000 readings.
        """
        self._transitions.append((at, online))
        self._transitions.sort()

    def _apply_transitions(self, upto: float) -> None:
        while self._transitions and self._transitions[0][0] <= upto:
            _, online = self._transitions.pop(0)
            self.set_online(online)

    def set_online(self, online: bool) -> None:
        """Network down (devices keep generating into their buffers) or back up (flush with jitter)."""
        if online == self.online:
            return
        now = time.monotonic()
        self.online = online
        if self.store is not None:
            self.store.switched(online)
        if not online:
            for dev in self.devices:
                dev.went_offline()
                dev.unanswered_since = -1.0  # silence during an outage is the outage, not the gateway
            return
        for dev in self.devices:
            dev.went_online()
            dev.inflight_last = -1
            dev.attempt = 0
            if dev.buf:
                self._schedule(dev, now + self.rng.random() * self.jitter, _WAKE)
            else:
                self._cancel(dev)

    def outage_backlog(self) -> int:
        """Readings generated during the outage that are still unacked (0 = drained).

        While the fleet is still offline the outage is not over, whatever is buffered so far: under load
        the tick loop can apply the flush edge late, and until then no device knows its outage's end.
        """
        if not self.online:
            return max(1, sum(len(dev.buf) for dev in self.devices))
        total = 0
        for dev in self.devices:
            if dev.outage_end > 0 and dev.base_seq < dev.outage_end:
                total += min(dev.outage_end - dev.base_seq, len(dev.buf))
        return total

    def unanswered(self, now: float, limit_s: float) -> tuple[float, int]:
        """(longest time a device has been sending without any answer, devices waiting longer than ``limit_s``)."""
        oldest = now
        over = 0
        for dev in self.devices:
            since = dev.unanswered_since
            if since >= 0:
                oldest = min(oldest, since)
                if now - since > limit_s:
                    over += 1
        return now - oldest, over

    # ------------------------------------------------------------------ durable state

    def checkpoint(self, wait: bool = False) -> None:
        """Compact the journal into a snapshot of every device + counters, samples and ``run_state``."""
        if self.store is None:
            return
        meta = {
            "counters": dataclasses.asdict(self.counters),
            "samples": [dataclasses.asdict(s) for s in self.samples],
            "max_lag_ms": self.max_lag_ms,
            "online": self.online,
            "run": self.run_state,
        }
        self.store.snapshot(self.devices, meta, wait)

    def restore(self) -> dict[str, Any] | None:
        """Load the devices from the store (snapshot + journal); returns the snapshot's meta or None.

        The counters that follow from device state (generated, buffered, acked, dropped) are recomputed
        exactly; the others (datagrams, retransmits, ...) are those of the last snapshot. Devices that
        hold readings and are online are scheduled to send (with the flush jitter): no timer survives.
        """
        assert self.store is not None
        meta = self.store.restore(self.devices, self.capacity, self.drop_oldest)
        if meta is None:
            return None
        self.counters = Counters(**{**dataclasses.asdict(Counters()), **meta["counters"]})
        self.samples = [Sample(**s) for s in meta["samples"]]
        self.max_lag_ms = meta["max_lag_ms"]
        self.online = meta["online"]
        self.run_state = meta["run"]
        self.last_alive = meta["last_alive"]
        self.first_seq = self.devices[0].first_seq if self.devices else self.first_seq
        c = self.counters
        self.buffered = sum(len(d.buf) for d in self.devices)
        c.generated = sum(d.next_seq - d.first_seq for d in self.devices)
        c.dropped_overflow = sum(d.dropped for d in self.devices)
        c.acked = c.generated - self.buffered - c.dropped_overflow
        if self.online:
            now = time.monotonic()
            for dev in self.devices:
                if dev.buf:
                    self._schedule(dev, now + self.rng.random() * self.jitter, _WAKE)
        return meta

    def expected(self) -> list[list]:
        """Per device: [id, first_seq, next_seq, outage_first, outage_end, dropped ranges]."""
        return [[d.id, d.first_seq, d.next_seq, d.outage_first, d.outage_end, d.drops] for d in self.devices]
