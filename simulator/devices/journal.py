"""The fleet's durable state: checkpoints into the state store and the restore after a restart.

One job: the fleet's side of persistence (the store itself, its files and formats, is persist.py).
``checkpoint()`` compacts the journal into a snapshot of every device plus counters, samples and the
runner's ``run_state`` (every ``CHECKPOINT_S``, from the tick loop); ``restore()`` loads them back and
recomputes what follows from device state. The per-change journal writes (readings generated, acks,
network switches) stay in the code that makes each change (wheel.py, transport.py, fleet.py): their
order against the sends is the guarantee, so they are not gathered here. Part of ``Fleet`` (fleet.py).
"""

from __future__ import annotations

import dataclasses
import random
import time
from typing import TYPE_CHECKING, Any

from simulator.devices.state import _WAKE, Counters, Device, Sample

if TYPE_CHECKING:
    from simulator.devices.persist import Store

CHECKPOINT_S = 5.0  # compaction period of the state store (journal -> snapshot), at least


class Journal:
    """Snapshots and restore of the ``Fleet`` (a mixin: the state it uses is set up by ``Fleet.__post_init__``)."""

    if TYPE_CHECKING:  # what the journal uses of the rest of the Fleet
        store: Store | None
        counters: Counters
        samples: list[Sample]
        max_lag_ms: float
        online: bool
        run_state: dict[str, Any]
        last_alive: float | None
        devices: list[Device]
        capacity: int
        drop_oldest: bool
        first_seq: int
        buffered: int
        rng: random.Random
        jitter: float

        def _schedule(self, dev: Device, at: float, kind: int) -> None: ...

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
