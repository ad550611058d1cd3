"""The fleet's plain records: one device's store-and-forward buffer (``Device``), the fleet's ``Counters``
and its per-second ``Sample``s.

One job: hold the state and the buffer's own state changes (``Device.add``, ``ack_to``, ...), no I/O and
no timing. They live apart from the fleet's engine because every part of it uses them (wheel.py,
transport.py, journal.py, fleet.py) and the state store replays its journal through the same buffer
code (persist.py): here they depend on nothing, so none of those modules imports another to get them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# pending timer kinds (Device.pending): set and fired by the timing wheel (wheel.py)
_NONE, _TIMEOUT, _WAKE = 0, 1, 2


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
        n = base_seq - self.base_seq
        if n <= 0:
            return 0
        buf = self.buf
        if n >= len(buf):  # the usual case: the ACK covers the whole buffer
            n = len(buf)
            buf.clear()
        else:
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
