"""Per-device delivery state (docs/protocol.md "Gateway rules" 6-9): high-water mark and in-flight ranges.

``hwm`` is the highest sequence such that every reading the device sent up to it is committed to Kafka
(a gap the device skipped on purpose counts as closed once everything below it is settled). Ranges in
flight and ranges committed above a range still in flight are kept as inclusive ``(lo, hi)`` pairs;
a well-behaved device (stop-and-wait) has at most one in flight, so these lists stay tiny.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Addr = tuple[Any, ...]
"""A UDP peer address as asyncio gives it: ``(host, port)`` for IPv4, ``(host, port, flow, scope)`` for IPv6."""


@dataclass(slots=True, eq=False)
class DeviceState:
    device_id: str
    raw_id: bytes
    key: bytes
    id_json: bytes = b""  # the id as a JSON string, for the Kafka record
    hwm: int | None = None
    inflight: list[tuple[int, int]] = field(default_factory=list)
    done: list[tuple[int, int]] = field(default_factory=list)
    addr: Addr | None = None
    last_seen: float = 0.0
    registry_gen: int = 0  # the registry generation its key was checked against

    def is_settled(self, seq: int) -> bool:
        """Committed (<= hwm) or in flight: a retransmission that must not be produced again."""
        if self.hwm is not None and seq <= self.hwm:
            return True
        for lo, hi in self.inflight:
            if lo <= seq <= hi:
                return True
        for lo, hi in self.done:
            if lo <= seq <= hi:
                return True
        return False

    def new_ranges(self, first_seq: int, last_seq: int) -> list[tuple[int, int]]:
        """The sub-ranges of ``first_seq..last_seq`` that are neither committed nor in flight."""
        if not self.inflight and not self.done:
            lo = first_seq if self.hwm is None else max(first_seq, self.hwm + 1)
            return [(lo, last_seq)] if lo <= last_seq else []
        ranges: list[tuple[int, int]] = []
        start = None
        for seq in range(first_seq, last_seq + 1):
            if self.is_settled(seq):
                if start is not None:
                    ranges.append((start, seq - 1))
                    start = None
            elif start is None:
                start = seq
        if start is not None:
            ranges.append((start, last_seq))
        return ranges

    def start(self, ranges: list[tuple[int, int]]) -> None:
        self.inflight.extend(ranges)

    def commit(self, ranges: list[tuple[int, int]]) -> None:
        """Kafka acked these ranges: move them to done and advance ``hwm`` as far as nothing lower is pending."""
        for r in ranges:
            self.inflight.remove(r)
            self.done.append(r)
        self._advance()

    def release(self, ranges: list[tuple[int, int]]) -> None:
        """Kafka failed these ranges: forget them so the device's retransmission is produced.

        Ranges committed above a failed one are forgotten too (they will be produced again, a duplicate the
        auditor counts): otherwise ``hwm`` could later jump over the hole and ack what Kafka never got.
        """
        for r in ranges:
            self.inflight.remove(r)
        lowest = min(lo for lo, _ in ranges)
        self.done = [d for d in self.done if d[0] < lowest]
        self._advance()

    def _advance(self) -> None:
        while self.done:
            lowest_done = min(self.done)
            if self.inflight and min(self.inflight)[0] < lowest_done[0]:
                return
            self.done.remove(lowest_done)
            if self.hwm is None or lowest_done[1] > self.hwm:
                self.hwm = lowest_done[1]
