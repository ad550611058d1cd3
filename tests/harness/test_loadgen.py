"""The bench's load generator: pre-built datagrams are the ones a device would build, and a run on real
UDP sockets against the acking sink acks every reading with them."""

from __future__ import annotations

import asyncio
import gc
import secrets

from harness.loadgen import Fleet, fleet_keys
from harness.sink import AckSink
from ibp import protocol


def _fleet(port: int, key: bytes) -> Fleet:
    """An ACK timeout far above loopback's round trip: the sink counts every datagram, and a host busy with
    the suite's last test (a stall of half a second: 0.5 s was the timeout) made retransmissions it counted."""
    return Fleet(
        "127.0.0.1",
        port,
        fleet_keys(key, 30, "lg"),
        readings_per_device=23,
        batch=10,
        run_id="lg",
        ack_timeout_s=5.0,
    )


def test_prebuild_encodes_every_batch_and_a_partial_ack_gets_a_fresh_datagram() -> None:
    key = secrets.token_bytes(32)
    fleet = _fleet(9, key)
    assert fleet.prebuild() == 30 * 3  # batches of 10, 10 and 3
    dev = next(iter(fleet.devices.values()))
    first = fleet._datagram(dev)
    assert first is dev.prebuilt[dev.first_seq][1]
    batch = protocol.parse_data(first)
    assert (batch.first_seq, len(batch.readings)) == (dev.first_seq, 10)
    dev.acked = dev.first_seq + 3  # an ACK that covered part of the datagram: the next starts mid-batch
    fresh = protocol.parse_data(fleet._datagram(dev))
    assert (fresh.first_seq, len(fresh.readings)) == (dev.first_seq + 4, 10)
    dev.acked = dev.first_seq + 19  # the last, short batch is pre-built too
    assert fleet._datagram(dev) is dev.prebuilt[dev.first_seq + 20][1]


def test_a_prebuilt_fleet_is_fully_acked_on_real_sockets() -> None:
    """While it runs the fleet is out of the cyclic collector's walks; afterwards the process's collector is
    as it was (the fleet runs inside pytest and the bench)."""
    seen: list[tuple[int, tuple[int, int, int]]] = []

    async def go() -> tuple[int, int, int]:
        key = secrets.token_bytes(32)
        loop = asyncio.get_running_loop()
        tr, sink = await loop.create_datagram_endpoint(lambda: AckSink(key), local_addr=("127.0.0.1", 0))
        fleet = _fleet(tr.get_extra_info("sockname")[1], key)
        fleet.prebuild()
        received = sink.datagram_received

        def probe(data: bytes, addr: tuple[str, int]) -> None:  # while the fleet runs
            seen.append((gc.get_freeze_count(), gc.get_threshold()))
            received(data, addr)

        sink.datagram_received = probe  # type: ignore[method-assign]
        result = await fleet.run(timeout_s=30)
        tr.close()
        return result.readings, result.fully_acked, sink.readings

    gc.unfreeze()
    before = gc.get_threshold()
    readings, fully_acked, at_sink = asyncio.run(go())
    assert (readings, fully_acked, at_sink) == (30 * 23, 30, 30 * 23)
    assert seen and seen[0][0] > 0 and seen[0][1][0] == 50_000  # settled during the run
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, before)


def test_a_paced_fleet_offers_its_rate_and_no_more() -> None:
    """30 devices, a batch of 10 every 0.25 s for 3 batches: 1,200 readings/s offered, so about 0.5 s or more
    (two intervals after the first send), where an unpaced fleet against the same sink takes milliseconds."""

    async def go() -> tuple[int, float, list[float]]:
        key = secrets.token_bytes(32)
        loop = asyncio.get_running_loop()
        tr, _sink = await loop.create_datagram_endpoint(lambda: AckSink(key), local_addr=("127.0.0.1", 0))
        fleet = Fleet(
            "127.0.0.1",
            tr.get_extra_info("sockname")[1],
            fleet_keys(key, 30, "pace"),
            readings_per_device=30,
            batch=10,
            run_id="pace",
            interval_s=0.25,
            ramp_s=0.25,
        )
        sent: list[float] = []
        send = fleet._datagram

        def spy(device):  # the time each device's datagram leaves
            sent.append(asyncio.get_running_loop().time())
            return send(device)

        fleet._datagram = spy
        result = await fleet.run(timeout_s=30)
        tr.close()
        return result.readings, result.elapsed_s, sent

    readings, elapsed, sent = asyncio.run(go())
    assert readings == 30 * 30
    assert 0.5 <= elapsed < 3.0, elapsed
    # the ramp spreads the first sends over the first interval, not all at once
    first_sends = sorted(sent)[:30]
    assert first_sends[-1] - first_sends[0] >= 0.2
