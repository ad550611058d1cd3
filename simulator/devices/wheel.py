"""The fleet's tick loop and timing wheel: when each device does what.

One job: time. ``run()`` ticks every ``TICK_S`` (~10 ms); a tick generates the readings of the time
slots that are due (every device belongs to one slot of the reading period), applies network switches
at their exact phase edge, fires the timing wheel (a dict from tick number to the devices due then:
retransmission timeouts, BUSY and rate-cap waits; at most one live entry per device, stale ones skipped
by a generation counter), takes a sample each second and commits the journal. What a device does when
its time comes (send, time out) is the transport's (transport.py); the loop's order (generate, commit,
then send) is what keeps every reading on disk before it leaves the host. Part of ``Fleet`` (fleet.py),
kept apart so the timing reads on its own, without the datagram code around it.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from typing import TYPE_CHECKING

from simulator.devices.journal import CHECKPOINT_S
from simulator.devices.state import _NONE, _TIMEOUT, Device, Sample

if TYPE_CHECKING:
    from simulator.devices.persist import Store
    from simulator.devices.state import Counters

TICK_S = 0.01


class Wheel:
    """The ``Fleet``'s clock (a mixin: the state it uses is set up by ``Fleet.__post_init__``)."""

    if TYPE_CHECKING:  # what the wheel uses of the rest of the Fleet
        store: Store | None
        counters: Counters
        samples: list[Sample]
        online: bool
        generating: bool
        buffered: int
        max_lag_ms: float
        capacity: int
        drop_oldest: bool
        nslots: int
        slot_len: float
        slots: list[list[Device]]
        slot_idx: list[array]
        wheel: dict[int, list[tuple[Device, int]]]
        _mono0: float
        _wall0: float
        _stopping: bool
        _wheel_tick: int
        _gen_start: float
        _gen_k: int
        _clock_started: bool
        _transitions: list[tuple[float, bool]]

        def _send(self, dev: Device, now: float) -> None: ...
        def _on_timeout(self, dev: Device, now: float) -> None: ...
        def checkpoint(self, wait: bool = False) -> None: ...
        def set_online(self, online: bool) -> None: ...

    # ------------------------------------------------------------------ clock and loop

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
            # Device.add's usual case (room in the buffer) inline: this loop runs once per reading, and
            # two calls per reading were a tenth of the simulator's CPU at 150,000 devices
            capacity, online, stored = self.capacity, self.online, 0
            for dev in self.slots[k]:
                buf = dev.buf
                if len(buf) < capacity:
                    dev.next_seq += 1
                    buf.append(ts)
                    stored += 1
                    if online and dev.pending == _NONE and dev.inflight_last < 0:
                        to_send.append(dev)
                elif self._store_reading(dev, ts):  # full: drop-oldest or drop-newest
                    to_send.append(dev)
            self.counters.generated += stored
            self.buffered += stored
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

    # ------------------------------------------------------------------ timing wheel

    def _schedule(self, dev: Device, at: float, kind: int) -> None:
        # once per datagram sent (its timeout): no setdefault (it builds a list every call) and no max()
        gen = dev.gen = dev.gen + 1
        dev.pending = kind
        tick = int(at / TICK_S)
        if tick < self._wheel_tick:
            tick = self._wheel_tick
        due = self.wheel.get(tick)
        if due is None:
            self.wheel[tick] = [(dev, gen)]
        else:
            due.append((dev, gen))

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

    # ------------------------------------------------------------------ network switches

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
