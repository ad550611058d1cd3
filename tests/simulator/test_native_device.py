"""The simulated devices' native path (gateway/native/src/device.rs, send.rs) against its Python reference:
the same payload bytes as ``datagram.payload``, the same DATA datagram as the fleet's ``_batch`` byte rule
plus ``ibp.protocol.encode_data``, the same answer fields and ProtocolError reasons as
``ibp.protocol.answer_fields``, the same tag check; ``send_many`` delivers every datagram of a batch, from
the offset it is given, and reports an error queued on the socket; ``send_segments`` delivers the same
datagrams in the same order from segmented (UDP GSO) messages, and where the socket cannot segment it
says so and the fleet's link goes back to ``send_many``. Last, one fleet run per path (native,
and ``native = None``) delivers everything to a real UDP sink.
"""

from __future__ import annotations

import asyncio
import errno
import secrets
import socket
import struct
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sink import AckSink
from ibp import protocol as ibp
from simulator.devices import datagram
from simulator.devices.fleet import Fleet
from simulator.devices.sockets import BatchLink, connected_socket
from simulator.devices.state import Device
from simulator.devices.transport import Transport
from simulator.orchestration.runner import run_phases
from simulator.scenario import parse
from tests.gateway.native_ext import ibp_native, needs_native
from tests.gateway.payload_strategies import near_misses

run_ids = st.text("0123456789TZabcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=60)
device_ids = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), min_size=1, max_size=20).filter(
    lambda s: "\x7f" not in s and len(s.encode()) <= ibp.MAX_ID_LEN
)
keys = st.binary(min_size=0, max_size=80)


@needs_native
@settings(max_examples=300, deadline=None)
@given(run_ids, st.integers(0, 300), st.integers(0, 2**40), st.integers(0, 2**32 - 1))
def test_native_payload_is_the_reference(run_id: str, pad: int, idx: int, seq: int) -> None:
    assert ibp_native.device_payload(run_id, pad, idx, seq) == datagram.payload(run_id, pad, idx, seq)


def _reference_data(dev: Device, batch: int, max_bytes: int, run_id: str, pad: int) -> tuple[bytes, int]:
    fleet = SimpleNamespace(
        batch=batch, max_bytes=max_bytes, payload=lambda d, seq: datagram.payload(run_id, pad, d.idx, seq)
    )
    readings = Transport._batch(fleet, dev, dev.base_seq)  # type: ignore[arg-type]
    return ibp.encode_data(dev.id, dev.key, dev.base_seq, readings), len(readings)


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    device_ids,
    keys,
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.integers(1, 300),
    st.integers(40, 4096),
    run_ids,
    st.integers(0, 200),
    st.integers(0, 10**6),
)
def test_native_data_datagram_is_the_reference(
    device_id: str,
    key: bytes,
    first: int,
    stamps: list[int],
    batch: int,
    max_bytes: int,
    run_id: str,
    pad: int,
    idx: int,
) -> None:
    dev = Device(idx, device_id, key, first, 0)
    dev.buf.extend(stamps)
    try:
        expected: tuple[bytes, int] | type[Exception] = _reference_data(dev, batch, max_bytes, run_id, pad)
    except ValueError:
        expected = ValueError
    if expected is ValueError:  # a batch past the u32 sequence range, or more than 255 readings
        with pytest.raises(ValueError):
            ibp_native.device_data(device_id, key, first, dev.buf, batch, max_bytes, run_id, pad, idx)
        return
    assert (
        ibp_native.device_data(device_id, key, first, dev.buf, batch, max_bytes, run_id, pad, idx) == expected
    )


@needs_native
def test_bad_batches_and_ids_are_refused_as_by_the_reference() -> None:
    dev = Device(0, "d", b"k", 1, 0)
    dev.buf.extend(range(300))
    with pytest.raises(ValueError):  # 256 readings fit in 64 KB: more than a datagram's count holds
        _reference_data(dev, 256, 65_535, "r", 0)
    with pytest.raises(ValueError):
        ibp_native.device_data("d", b"k", 1, dev.buf, 256, 65_535, "r", 0, 0)
    assert ibp_native.device_data("d", b"k", 1, dev.buf, 255, 65_535, "r", 0, 0) == _reference_data(
        dev, 255, 65_535, "r", 0
    )
    for bad in ("", "x" * 65, "a\x01b"):
        with pytest.raises(ValueError):
            ibp.encode_data(bad, b"k", 1, [(1, b"{}")])
        with pytest.raises(ValueError):
            ibp_native.device_data(bad, b"k", 1, [1], 1, 1472, "r", 0, 0)


def _outcome(fn, data: bytes):
    try:
        return fn(data)
    except ibp.ProtocolError as exc:
        return ("refused", exc.reason, str(exc))


answers = st.one_of(
    st.builds(ibp.encode_ack, device_ids, keys, st.integers(0, 2**32 - 1)),
    st.builds(ibp.encode_busy, device_ids, keys, st.integers(0, 0xFFFF)),
    st.just(ibp.AUTH_FAIL_DATAGRAM),
)


@needs_native
@settings(max_examples=1000, deadline=None)
@given(st.one_of(answers, near_misses(answers), st.binary(max_size=80)))
def test_native_answer_fields_are_the_reference(data: bytes) -> None:
    assert _outcome(ibp_native.parse_answer, data) == _outcome(ibp.answer_fields, data)


@needs_native
@settings(max_examples=300, deadline=None)
@given(device_ids, keys, keys, st.integers(0, 2**32 - 1), st.booleans())
def test_native_answer_tag_check_is_the_reference(
    device_id: str, key: bytes, other: bytes, seq: int, same: bool
) -> None:
    data = ibp.encode_ack(device_id, key, seq)
    _, _, _, at = ibp.answer_fields(data)
    check = key if same else other
    assert ibp_native.verify(check, data, at) == ibp.verify_answer(check, data, at)
    assert ibp.verify_answer(key, data, at)


def _pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setblocking(False)
    tx.connect(rx.getsockname())
    return rx, tx


@needs_native
def test_send_many_sends_every_datagram_from_the_offset() -> None:
    rx, tx = _pair()
    try:
        batch = [struct.pack(">I", i) * 4 for i in range(1500)]  # more than one sendmmsg (1,024) takes
        assert ibp_native.send_many(tx.fileno(), batch, 100) == 1400
        rx.settimeout(2)
        got = [rx.recv(64) for _ in range(1400)]
        assert got == batch[100:]
        assert ibp_native.send_many(tx.fileno(), batch, 1500) == 0
    finally:
        rx.close()
        tx.close()


@needs_native
def test_send_many_reports_an_error_queued_on_the_socket() -> None:
    rx, tx = _pair()
    rx.close()  # nobody listens: the kernel answers ICMP port unreachable
    try:
        assert ibp_native.send_many(tx.fileno(), [b"x"], 0) == 1
        with pytest.raises(ConnectionRefusedError):
            for _ in range(50):
                ibp_native.send_many(tx.fileno(), [b"x"], 0)
    finally:
        tx.close()


SO_NO_CHECK = 11  # asm-generic/socket.h: no UDP checksum, so the kernel refuses to segment (EINVAL)


def _drain(rx: socket.socket, count: int) -> list[bytes]:
    rx.settimeout(2)
    return [rx.recv(65_536) for _ in range(count)]


@needs_native
def test_send_segments_delivers_the_same_datagrams_in_order() -> None:
    """Runs of one size, a shorter last one, a longer one breaking a run, runs over the 64 segments and
    the 65,000 bytes a message holds, single datagrams: every datagram arrives alone, intact, in order."""
    sizes = [97] * 150 + [50] + [97] * 3 + [1400] * 60 + [40, 41, 42] + [9000] * 9 + [97]
    batch = [struct.pack(">I", i) * (n // 4) + bytes(n % 4) for i, n in enumerate(sizes)]
    rx, tx = _pair()
    try:
        assert ibp_native.send_segments(tx.fileno(), batch, 10) == len(batch) - 10
        assert _drain(rx, len(batch) - 10) == batch[10:]
        assert ibp_native.send_segments(tx.fileno(), batch, len(batch)) == 0
    finally:
        rx.close()
        tx.close()


@needs_native
def test_send_segments_on_a_socket_that_cannot_segment_raises_einval() -> None:
    rx, tx = _pair()
    tx.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    try:
        assert ibp_native.send_segments(tx.fileno(), [b"alone"], 0) == 1  # one datagram: no segmenting
        with pytest.raises(OSError) as err:
            ibp_native.send_segments(tx.fileno(), [b"ab", b"cd"], 0)
        assert err.value.errno == errno.EINVAL
        assert _drain(rx, 1) == [b"alone"]
    finally:
        rx.close()
        tx.close()


@needs_native
@pytest.mark.parametrize("no_check", [False, True], ids=["segmenting", "route-cannot-segment"])
def test_a_batch_link_sends_every_datagram_segmented_or_not(no_check: bool) -> None:
    """The fleet's link sends segmented messages, and where the route refuses them it goes back to one
    message per datagram without losing or counting any."""

    async def go() -> tuple[bool, int]:
        loop = asyncio.get_running_loop()
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        rx.bind(("127.0.0.1", 0))
        sock = connected_socket(rx.getsockname())
        if no_check:
            sock.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        errors: list[int] = []
        link = BatchLink(loop, sock, ibp_native, lambda data: None, lambda: errors.append(1))
        assert link.segmenting
        batch = [b"%05d" % i * 20 for i in range(500)]
        for data in batch:
            link.send(data)
        await asyncio.sleep(0.05)  # the flush runs on the next loop pass
        got = _drain(rx, len(batch))
        segmenting = link.segmenting
        link.close()
        rx.close()
        assert got == batch
        return segmenting, len(errors)

    segmenting, errors = asyncio.run(go())
    assert segmenting is not no_check
    assert errors == 0


@pytest.mark.parametrize("path", ["native", "python"])
def test_a_fleet_delivers_everything_on_either_path(path: str) -> None:
    if path == "native" and ibp_native is None:
        pytest.skip("ibp_native not built")

    async def go() -> dict:
        key = secrets.token_bytes(32)
        loop = asyncio.get_running_loop()
        tr, sink = await loop.create_datagram_endpoint(lambda: AckSink(key), local_addr=("127.0.0.1", 0))
        scn = parse(
            "devices: {count: 300}\nflush: {batch_size: 32, jitter_ms: 100}\nfinal_drain_s: 20\n"
            "phases: [{name: n, kind: normal, duration_s: 1}, {name: o, kind: outage, duration_s: 2},"
            " {name: r, kind: recovery, until: drained, max_s: 20, after_drained_s: 0}]\n"
        )
        fleet = Fleet(scn, "127.0.0.1", tr.get_extra_info("sockname")[1], "t", key, seed=3)
        if path == "python":
            fleet.native = None
        await fleet.open()
        res = await run_phases(fleet, scn)
        # on loopback the native sockets segment (UDP GSO); the Python reference is the loop's transport
        assert fleet.send_path() == ("segmented" if path == "native" else "transport")
        fleet.close()
        tr.close()
        assert sink.readings == res["counters"]["acked"]
        return res

    res = asyncio.run(go())
    c = res["counters"]
    assert res["buffered_at_end"] == 0 and c["acked"] == c["generated"] >= 900
    assert c["bad_answers"] == 0 and c["timeouts"] == 0
