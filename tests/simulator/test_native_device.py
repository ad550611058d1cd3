"""The simulated devices' native path (gateway/native/src/device.rs, send.rs) against its Python reference:
the same payload bytes as ``datagram.payload``, the same DATA datagram as the fleet's ``_batch`` byte rule
plus ``ibp.protocol.encode_data``, the same answer fields and ProtocolError reasons as
``ibp.protocol.answer_fields``, the same tag check; ``send_many`` delivers every datagram of a batch, from
the offset it is given, and reports an error queued on the socket; ``send_segments`` delivers the same
datagrams in the same order from segmented (UDP GSO) messages, and where the socket cannot segment it
says so and the fleet's link goes back to ``send_many``. One fleet run per path (native,
and ``native = None``) delivers everything to a real UDP sink. Last, the fleet's ``DeviceBook``
(book.rs) judges answers as ``datagram.judge_answer`` and builds the datagrams ``device_data`` builds;
``Receiver.recv_answers`` reads a batch of answers, with and without UDP_GRO; the capacity sink's
``AckResponder`` (sink.rs) answers every DATA datagram with its ACK, to its sender.
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


# ---------------------------------------------------------------- the fleet's DeviceBook (book.rs)

BOOK_IDS = ["dev-000000", "dev-000001", "dévice-2", "x"]


def _book_fleet() -> tuple[dict[str, Device], list[bytes]]:
    keys_ = [secrets.token_bytes(32) for _ in BOOK_IDS]
    return {d: Device(i, d, k, 1, 0) for i, (d, k) in enumerate(zip(BOOK_IDS, keys_, strict=True))}, keys_


BOOK_BY_ID, BOOK_KEYS = _book_fleet()
book_answers = st.one_of(
    # a known device with its key, a known device with a wrong key, an unknown device
    st.builds(
        lambda i, seq, busy: (ibp.encode_busy if busy else ibp.encode_ack)(
            BOOK_IDS[i], BOOK_KEYS[i], seq % 0x10000 if busy else seq
        ),
        st.integers(0, len(BOOK_IDS) - 1),
        st.integers(0, 2**32 - 1),
        st.booleans(),
    ),
    st.builds(
        lambda i, key, seq: ibp.encode_ack(BOOK_IDS[i], key, seq), st.integers(0, 3), keys, st.integers(0, 99)
    ),
    st.builds(ibp.encode_ack, device_ids, keys, st.integers(0, 2**32 - 1)),
    st.just(ibp.AUTH_FAIL_DATAGRAM),
)


def _book(native, run_id: str = "r", pad: int = 0, batch: int = 32, max_bytes: int = 1472):
    return native.DeviceBook(BOOK_IDS, BOOK_KEYS, run_id, pad, batch, max_bytes)


@needs_native
@settings(max_examples=1000, deadline=None)
@given(st.one_of(book_answers, near_misses(book_answers), st.binary(max_size=80)))
def test_the_book_judges_an_answer_as_the_reference(data: bytes) -> None:
    assert _book(ibp_native).check(data) == datagram.judge_answer(data, BOOK_BY_ID)


@needs_native
@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, len(BOOK_IDS) - 1),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=40),
    st.integers(1, 255),
    st.integers(40, 4096),
    run_ids,
    st.integers(0, 200),
)
def test_the_books_data_datagram_is_device_data(
    idx: int, first: int, stamps: list[int], batch: int, max_bytes: int, run_id: str, pad: int
) -> None:
    book = _book(ibp_native, run_id, pad, batch, max_bytes)
    args = (BOOK_IDS[idx], BOOK_KEYS[idx], first, stamps, batch, max_bytes, run_id, pad, idx)
    try:
        expected: object = ibp_native.device_data(*args)
    except ValueError:
        with pytest.raises(ValueError):
            book.data(idx, first, stamps)
        return
    assert book.data(idx, first, stamps) == expected


@needs_native
def test_a_book_refuses_what_no_fleet_has() -> None:
    with pytest.raises(ValueError, match="one key per device"):
        ibp_native.DeviceBook(["a", "b"], [b"k"], "r", 0, 1, 1472)
    with pytest.raises(ValueError, match="there twice"):
        ibp_native.DeviceBook(["a", "a"], [b"k", b"k"], "r", 0, 1, 1472)
    with pytest.raises(ValueError, match="device 1"):
        ibp_native.DeviceBook(["a", "b\x01"], [b"k", b"k"], "r", 0, 1, 1472)
    with pytest.raises(ValueError, match="no device 4"):
        _book(ibp_native).data(4, 1, [1])
    assert len(_book(ibp_native)) == len(BOOK_IDS)


UDP_GRO = 104


@needs_native
@pytest.mark.parametrize("gro", [False, True], ids=["one-per-slot", "udp-gro"])
def test_recv_answers_reads_parses_and_verifies_a_batch(gro: bool) -> None:
    """Answers sent one by one and as segmented runs (what the acking sink sends) come back in order,
    judged as the reference judges each; with UDP_GRO on the socket a run arrives as one buffer and is
    cut back into its answers."""
    rx, tx = _pair()
    rx.setblocking(False)
    if gro:
        rx.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    book = _book(ibp_native)
    acks = [ibp.encode_ack(BOOK_IDS[0], BOOK_KEYS[0], seq) for seq in range(40)]  # one size: one run
    mixed = [
        ibp.encode_busy(BOOK_IDS[2], BOOK_KEYS[2], 250),
        ibp.AUTH_FAIL_DATAGRAM,
        ibp.encode_ack(BOOK_IDS[1], BOOK_KEYS[0], 7),  # the wrong device's key
        b"",
        ibp.encode_ack(BOOK_IDS[3], BOOK_KEYS[3], 9),
    ]
    try:
        assert ibp_native.send_segments(tx.fileno(), acks, 0) == len(acks)
        assert ibp_native.send_many(tx.fileno(), mixed, 0) == len(mixed)
        receiver = ibp_native.Receiver(64, 65_536, gro=gro)
        got: list[tuple[int, int, int]] = []
        received = auth_fail = bad = 0
        for _ in range(100):
            answers, n, a, b = receiver.recv_answers(rx.fileno(), book)
            got += answers
            received, auth_fail, bad = received + n, auth_fail + a, bad + b
            if received == len(acks) + len(mixed):
                break
        expected = [datagram.judge_answer(d, BOOK_BY_ID) for d in acks + mixed]
        assert got == [e for e in expected if e[0] not in (0, ibp.T_AUTH_FAIL)]
        assert (received, auth_fail, bad) == (len(acks) + len(mixed), 1, 2)
        # the same run again through recv(): each datagram on its own, whatever the kernel coalesced
        assert ibp_native.send_segments(tx.fileno(), acks, 0) == len(acks)
        datagrams: list[bytes] = []
        for _ in range(100):
            datagrams += [d for d, _addr in receiver.recv(rx.fileno())]
            if len(datagrams) >= len(acks):
                break
        assert datagrams == acks
    finally:
        rx.close()
        tx.close()


@needs_native
def test_the_native_ack_responder_answers_every_datagram_with_its_last_sequence() -> None:
    """The capacity sink's responder (sink.rs): DATA datagrams sent one by one and as a segmented run
    from two sockets, each answered with an ACK of its last reading signed with the derived device key,
    to its own sender; other datagrams are not answered."""
    master = secrets.token_bytes(32)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.IPPROTO_UDP, UDP_GRO, 1)
    sink.setblocking(False)
    a, b = connected_socket(sink.getsockname()), connected_socket(sink.getsockname())
    responder = ibp_native.AckResponder(master, 64, 65_536)
    ids = ["dev-000001", "dev-000002"]
    dkeys = [ibp.derive_device_key(master, d) for d in ids]
    run = [ibp.encode_data(ids[0], dkeys[0], 100 + i, [(1, b"{}")]) for i in range(30)]
    batch = ibp.encode_data(ids[1], dkeys[1], 5, [(1, b"{}"), (2, b"{}"), (3, b"{}")])
    try:
        assert ibp_native.send_segments(a.fileno(), run, 0) == len(run)
        assert ibp_native.send_many(b.fileno(), [batch, b"IB\x01\x81junk", b"noise"], 0) == 3
        for _ in range(100):
            responder.serve(sink.fileno())
            if responder.datagrams == len(run) + 1:
                break
        assert (responder.datagrams, responder.readings, responder.dropped) == (31, 33, 0)
        a.settimeout(2)
        b.settimeout(2)
        assert [a.recv(512) for _ in run] == [ibp.encode_ack(ids[0], dkeys[0], 100 + i) for i in range(30)]
        assert b.recv(512) == ibp.encode_ack(ids[1], dkeys[1], 7)
        with pytest.raises(ValueError, match="master key"):
            ibp_native.AckResponder(b"", 64, 65_536)
    finally:
        for s in (sink, a, b):
            s.close()


@needs_native
def test_a_native_fleet_reads_its_answers_through_the_book() -> None:
    """On the native path every link parses and verifies answers in batches against the fleet's book;
    with a fault that drops answers one by one, the links hand each datagram over on its own."""

    async def go(ack_loss: int) -> list[bool]:
        scn = parse(
            "devices: {count: 10}\nphases: [{name: n, kind: normal, duration_s: 1}]\n"
            + (f"faults: {{ack_loss_percent: {ack_loss}}}\n" if ack_loss else "")
        )
        fleet = Fleet(scn, "127.0.0.1", 9, "t", secrets.token_bytes(32))
        assert fleet.book is not None and len(fleet.book) == 10
        await fleet.open()
        batched = [isinstance(link, BatchLink) and link.book is not None for link in fleet.links]
        fleet.close()
        return batched

    assert all(asyncio.run(go(0)))
    assert not any(asyncio.run(go(5)))
