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

The fleet is one class built from parts, each in its own module: the records (``Device``, ``Counters``,
``Sample``: state.py), the tick loop and timing wheel (wheel.py), the UDP endpoint and the datagrams
(transport.py) and checkpoints/restore (journal.py). This module builds the fleet and holds what a run
asks of it (network switches, backlog, silence, the expected set); its names stay importable from here.
"""

from __future__ import annotations

import random
import time
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.devices.journal import CHECKPOINT_S, Journal
from simulator.devices.state import _WAKE, Counters, Device, Sample
from simulator.devices.transport import Transport
from simulator.devices.wheel import TICK_S, Wheel
from simulator.scenario import Scenario

if TYPE_CHECKING:
    from simulator.devices.persist import Store
    from simulator.devices.sockets import Link

__all__ = [
    "CHECKPOINT_S",
    "SEQ_EPOCH_S",
    "TICK_S",
    "Counters",
    "Device",
    "Fleet",
    "Sample",
    "device_ids",
    "start_sequence",
]

SEQ_EPOCH_S = 1_735_689_600  # 2025-01-01T00:00:00Z


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


@dataclass
class Fleet(Wheel, Transport, Journal):
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
    # Every gateway of a run with several (host, port), the first being ``host:port``; empty: that one
    # alone. Device i talks to gateway i mod len(gateways) for the whole run (no failover): when its
    # gateway is down, a device keeps its readings until that gateway answers again.
    gateways: tuple[tuple[str, int], ...] = ()

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
        self.addresses = list(self.gateways) or [(self.host, self.port)]
        if self.addresses[0] != (self.host, self.port):
            raise ValueError(
                f"gateways must start with host:port {self.host}:{self.port}, got {self.addresses[0]}"
            )
        # transport.sockets per gateway; socket k is connected to gateway k mod len(addresses), so
        # device i (on socket i mod nsock) talks to gateway i mod len(addresses)
        nsock = max(1, min(scn.transport.sockets, len(ids))) * len(self.addresses)
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
        # Slot k holds a contiguous range of devices, not every nslots-th one: the devices of one tick were
        # built one after the other, so their objects and buffers sit together in memory, and the tick and
        # the answers that follow it touch a megabyte instead of every page of the fleet (at 100,000-120,000
        # devices, 8.2-8.9 instead of 10.5-12.1 us of CPU per reading, measured alternating).
        per_slot = max(1, len(self.devices))
        for d in self.devices:
            self.slots[d.idx * self.nslots // per_slot].append(d)
        self.slot_idx = [array("I", [d.idx for d in slot]) for slot in self.slots]  # for the journal
        self.wheel: dict[int, list[tuple[Device, int]]] = {}
        self.links: list[Link] = []
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
        self.book = self.make_book()
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._stopping = False
        self._wheel_tick = int(self._mono0 / TICK_S)
        self._gen_start = self._mono0
        self._gen_k = 0
        self._clock_started = False
        self._transitions: list[tuple[float, bool]] = []  # (monotonic time, online) applied by the tick loop

    def make_book(self) -> Any:
        """The devices' ``ibp_native.DeviceBook`` (ids, keyed HMACs, the fleet's datagram rules): built
        once with the fleet, so its memory counts per device; None for legacy protocols or without the
        native module."""
        if self.native is None or self.protocol != "ibp1":
            return None
        return self.native.DeviceBook(
            [d.id for d in self.devices],
            [d.key for d in self.devices],
            self.run_id,
            self._payload_pad,
            self.batch,
            self.max_bytes,
        )

    # ------------------------------------------------------------------ control

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

    def expected(self) -> list[list]:
        """Per device: [id, first_seq, next_seq, outage_first, outage_end, dropped ranges]."""
        return [[d.id, d.first_seq, d.next_seq, d.outage_first, d.outage_end, d.drops] for d in self.devices]
