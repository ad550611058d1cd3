"""Per-device high-water mark and in-flight bookkeeping (docs/protocol.md rules 6-9)."""

from __future__ import annotations

from gateway.devices import DeviceState


def dev() -> DeviceState:
    return DeviceState("sim-1", b"sim-1", b"k" * 32)


def test_first_datagram_is_accepted_whatever_its_sequence() -> None:
    d = dev()
    assert d.new_ranges(1000, 1009) == [(1000, 1009)]
    d.start([(1000, 1009)])
    assert d.new_ranges(1000, 1009) == []  # a retransmission while in flight is a duplicate
    d.commit([(1000, 1009)])
    assert d.hwm == 1009
    assert d.new_ranges(1005, 1014) == [(1010, 1014)]  # partial overlap: only the new part


def test_hwm_waits_for_lower_ranges_in_flight() -> None:
    d = dev()
    d.hwm = 9
    d.start([(10, 19)])
    d.start([(20, 29)])
    d.commit([(20, 29)])
    assert d.hwm == 9  # 10..19 still in flight: no jump
    assert d.new_ranges(20, 29) == []
    d.commit([(10, 19)])
    assert d.hwm == 29 and not d.done and not d.inflight


def test_failure_releases_and_never_lets_hwm_jump_a_hole() -> None:
    d = dev()
    d.hwm = 9
    d.start([(10, 19)])
    d.start([(20, 29)])
    d.commit([(20, 29)])
    d.release([(10, 19)])
    assert d.hwm == 9
    assert d.new_ranges(10, 29) == [(10, 29)]  # all of it is produced again


def test_gap_is_accepted_when_nothing_lower_is_pending() -> None:
    d = dev()
    d.hwm = 9
    d.start([(50, 59)])
    d.commit([(50, 59)])
    assert d.hwm == 59
