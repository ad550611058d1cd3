"""The fleet engine on real UDP sockets against the acking sink (no broker): buffers, drops, retransmits."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from harness.sink import AckSink
from ibp import protocol as ibp
from simulator.devices.fleet import Fleet, device_ids, start_sequence
from simulator.orchestration.runner import run_phases
from simulator.scenario import parse


def _scn(extra: str = "", phases: str = "[{name: n, kind: normal, duration_s: 1}]") -> object:
    return parse(f"devices: {{count: 20}}\nflush: {{jitter_ms: 50}}\nphases: {phases}\n{extra}")


async def _with_sink(key: bytes):
    loop = asyncio.get_running_loop()
    tr, sink = await loop.create_datagram_endpoint(lambda: AckSink(key), local_addr=("127.0.0.1", 0))
    return tr, sink, tr.get_extra_info("sockname")[1]


def test_device_ids_split_by_agent_never_collide() -> None:
    parts = [device_ids("sim-", 1000, i, 3) for i in range(3)]
    flat = [d for p in parts for d in p]
    assert len(flat) == len(set(flat)) == 1000
    assert flat[0] == "sim-000000" and flat[-1] == "sim-000999"


def test_start_sequence_grows_faster_than_devices_can_generate() -> None:
    assert start_sequence(1_800_000_001) - start_sequence(1_800_000_000) == 10  # 10 readings/s is the maximum


@pytest.mark.parametrize(("count", "rate"), [(1000, "1"), (7, "1"), (250, "0.5"), (1, "10")])
def test_every_device_is_in_one_slot_of_a_contiguous_range(count: int, rate: str) -> None:
    """Slots are contiguous ranges of devices (adjacent in memory, fleet.py) of sizes that differ by at
    most one, and together hold every device once."""
    scn = parse(
        f"devices: {{count: {count}}}\nreading: {{rate_hz: {rate}}}\nphases: [{{name: n, kind: normal, duration_s: 1}}]\n"
    )
    fleet = Fleet(scn, "127.0.0.1", 9, "t", b"k" * 32)  # type: ignore[arg-type]
    flat = [d.idx for slot in fleet.slots for d in slot]
    assert flat == list(range(count))  # every device once, slot after slot in device order
    sizes = [len(slot) for slot in fleet.slots]
    assert len(sizes) == fleet.nslots
    if count >= fleet.nslots:
        assert max(sizes) - min(sizes) <= 1


def test_drop_oldest_counts_and_records_drops() -> None:
    async def go() -> None:
        key = secrets.token_bytes(32)
        tr, sink, port = await _with_sink(key)
        fleet = Fleet(
            _scn("devices: {count: 2, buffer_capacity: 3, overflow: drop-oldest}"),
            "127.0.0.1",
            port,
            "t",
            key,
        )
        await fleet.open()
        fleet.generating = False
        fleet.set_online(False)
        dev = fleet.devices[0]
        for _ in range(10):
            fleet._new_reading(dev, int(time.time() * 1000), time.monotonic())
        assert fleet.buffered == 3 and dev.dropped == 7 and fleet.counters.dropped_overflow == 7
        assert dev.drops == [[dev.first_seq, dev.first_seq + 6]]
        assert dev.base_seq == dev.first_seq + 7  # the newest three are kept
        driver = asyncio.create_task(fleet.run())
        fleet.set_online(True)
        for _ in range(200):
            if fleet.buffered == 0:
                break
            await asyncio.sleep(0.02)
        fleet.stop()
        await driver
        fleet.close()
        tr.close()
        assert fleet.buffered == 0 and fleet.counters.acked == 3 and sink.readings == 3

    asyncio.run(go())


def test_drop_newest_keeps_the_oldest() -> None:
    fleet = Fleet(
        _scn("devices: {count: 1, buffer_capacity: 2, overflow: drop-newest}"), "127.0.0.1", 9, "t", b"k" * 32
    )
    fleet.set_online(False)
    dev = fleet.devices[0]
    for _ in range(5):
        fleet._new_reading(dev, 1, time.monotonic())
    assert fleet.buffered == 2 and dev.base_seq == dev.first_seq
    # refused readings take no sequence: the buffer stays contiguous and the next stored reading is +2
    assert dev.drops == [] and dev.dropped == 3 and fleet.counters.dropped_overflow == 3
    assert dev.next_seq == dev.first_seq + 2
    dev.ack_to(dev.first_seq + 1)
    fleet._new_reading(dev, 2, time.monotonic())
    assert list(dev.buf) == [1, 2] and dev.base_seq == dev.first_seq + 1 and dev.next_seq == dev.first_seq + 3


def test_lost_acks_are_retransmitted_until_everything_is_acked() -> None:
    async def go() -> None:
        key = secrets.token_bytes(32)
        tr, _, port = await _with_sink(key)
        scn = _scn(
            "faults: {ack_loss_percent: 40}\ntransport: {ack_timeout_ms: 100, backoff_base_ms: 20, backoff_cap_ms: 200}\n"
            "final_drain_s: 20",
            "[{name: n, kind: normal, duration_s: 2}, {name: o, kind: outage, duration_s: 2},"
            " {name: r, kind: recovery, until: drained, max_s: 20, after_drained_s: 0}]",
        )
        fleet = Fleet(scn, "127.0.0.1", port, "t", key, seed=7)
        await fleet.open()
        res = await run_phases(fleet, scn)
        fleet.close()
        tr.close()
        c = res["counters"]
        assert c["acks_lost_by_fault"] > 0 and c["timeouts"] > 0 and c["retransmits"] > 0
        assert res["buffered_at_end"] == 0 and c["acked"] == c["generated"]
        events = [m["event"] for m in res["markers"]]
        assert events.index("outage_start") < events.index("flush_start") < events.index("drained")

    asyncio.run(go())


def test_legacy_binary_datagrams_parse_with_the_reference_codec() -> None:
    async def go() -> list[bytes]:
        got: list[bytes] = []

        class Catch(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                got.append(data)

        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(Catch, local_addr=("127.0.0.1", 0))
        scn = _scn("transport: {protocol: legacy-bin}", "[{name: n, kind: normal, duration_s: 1.5}]")
        fleet = Fleet(scn, "127.0.0.1", tr.get_extra_info("sockname")[1], "legacy-run", None)
        await fleet.open()
        await run_phases(fleet, scn)
        fleet.close()
        await asyncio.sleep(0.1)
        tr.close()
        return got

    got = asyncio.run(go())
    assert len(got) >= 20
    parsed = [ibp.parse_legacy(d) for d in got]
    assert {p.proto for p in parsed} == {"legacy-bin"}
    assert b'"run": "legacy-run"' in parsed[0].payload or b'"run":"legacy-run"' in parsed[0].payload


def test_phase_edges_are_exact_even_when_the_loop_stalls() -> None:
    """A 3 s outage of 500 devices at 1 reading/s buffers exactly 1,500 readings, although the event
    loop is blocked for 300 ms across both edges (as on a starved, shared machine)."""

    async def go() -> dict:
        key = secrets.token_bytes(32)
        tr, _, port = await _with_sink(key)
        scn = _scn(
            "devices: {count: 500}\nfinal_drain_s: 10",
            "[{name: n, kind: normal, duration_s: 2}, {name: o, kind: outage, duration_s: 3},"
            " {name: r, kind: recovery, until: drained, max_s: 20, after_drained_s: 0}]",
        )
        fleet = Fleet(scn, "127.0.0.1", port, "t", key)
        await fleet.open()

        async def stall(at: float) -> None:
            await asyncio.sleep(at)
            time.sleep(0.3)  # noqa: ASYNC251 - block the whole loop, deliberately

        stalls = [asyncio.create_task(stall(1.9)), asyncio.create_task(stall(4.9))]
        res = await run_phases(fleet, scn)
        await asyncio.gather(*stalls)
        fleet.close()
        tr.close()
        return res

    res = asyncio.run(go())
    outage = sum(row[4] - row[3] for row in res["expected"])
    assert outage == 500 * 3, f"{outage} readings generated during a 3 s outage of 500 devices"
    assert res["buffered_at_end"] == 0


def test_outage_is_not_drained_until_the_fleet_is_back_online() -> None:
    """Under load the tick loop may apply the flush edge late; until then the outage is not over, even
    if no reading of it has been generated yet (a run once marked 'drained' at the flush edge itself)."""
    fleet = Fleet(_scn("devices: {count: 3}"), "127.0.0.1", 9, "t", b"k" * 32)
    fleet.set_online(False)
    assert fleet.outage_backlog() >= 1, "offline with empty buffers is still an outage in progress"
    dev = fleet.devices[0]
    fleet._new_reading(dev, 1, time.monotonic())
    fleet._new_reading(dev, 2, time.monotonic())
    assert fleet.outage_backlog() == 2
    fleet.set_online(True)
    assert fleet.outage_backlog() == 2, "back online: the two outage readings are still unacked"
    dev.buf.clear()
    dev.base_seq = dev.next_seq
    assert fleet.outage_backlog() == 0


def test_two_gateways_split_the_devices_and_a_down_one_keeps_its_devices_readings() -> None:
    """Device i talks to gateway i mod 2; while gateway 1 is down its devices hold their readings (no
    failover), gateway 0's devices are acked meanwhile, and everything is acked once gateway 1 is back."""

    async def go() -> None:
        key = secrets.token_bytes(32)
        loop = asyncio.get_running_loop()
        tr0, sink0, port0 = await _with_sink(key)
        probe, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        port1 = probe.get_extra_info("sockname")[1]
        probe.close()  # gateway 1's port: nobody listens yet
        scn = _scn(
            "transport: {sockets: 3, ack_timeout_ms: 100, backoff_base_ms: 20, backoff_cap_ms: 200}",
            "[{name: n, kind: normal, duration_s: 30}]",
        )
        fleet = Fleet(
            scn, "127.0.0.1", port0, "t", key, gateways=(("127.0.0.1", port0), ("127.0.0.1", port1))
        )
        await fleet.open()
        assert len(fleet.links) == 6
        driver = asyncio.create_task(fleet.run())
        await asyncio.sleep(2.5)
        waiting = [d for d in fleet.devices if d.idx % 2 == 1]
        assert all(d.buf for d in waiting), "gateway 1 is down: its devices keep what they generated"
        assert set(sink0.keys) == {d.id.encode() for d in fleet.devices if d.idx % 2 == 0}
        tr1, sink1 = await loop.create_datagram_endpoint(
            lambda: AckSink(key), local_addr=("127.0.0.1", port1)
        )
        for _ in range(300):
            await asyncio.sleep(0.02)
            if all(not d.buf for d in waiting):
                break
        fleet.stop()
        await driver
        fleet.close()
        tr0.close()
        tr1.close()
        assert set(sink1.keys) == {d.id.encode() for d in waiting}
        assert fleet.counters.acked == fleet.counters.generated - fleet.buffered
        assert all(not d.buf for d in waiting)

    asyncio.run(go())


def test_gateways_must_start_with_host_and_port() -> None:
    with pytest.raises(ValueError, match=r"must start with host:port 127\.0\.0\.1:5000"):
        Fleet(_scn(), "127.0.0.1", 5000, "t", b"k" * 32, gateways=(("10.0.0.2", 5000),))
