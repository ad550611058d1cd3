"""The fast-path parser and answer encoder agree with the reference codec (ibp/protocol.py), and the native
extension (gateway/native/, ``ibp_native``) agrees with both: same decision, same ProtocolError reason, same bytes.

The native tests are skipped where the extension is not built (no cargo); ``IBP_NATIVE_REQUIRED=1`` turns
that skip into a failure (for a CI that must test the extension).
"""

from __future__ import annotations

import json
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import fastpath, hotpath
from ibp import protocol
from tests.gateway.native_ext import ibp_native, needs_native
from tests.gateway.payload_strategies import near_misses, payloads

KEY = bytes(range(32))


def reference(datagram: bytes):
    try:
        batch = protocol.parse_data(datagram)
    except protocol.ProtocolError as exc:
        return exc.reason
    return (batch.device_id, batch.first_seq, [(r.timestamp_ms, r.payload) for r in batch.readings])


def fast(datagram: bytes):
    try:
        raw_id, first, readings, tag_at = fastpath.parse_data_raw(datagram)
        device_id = fastpath.check_device_id(raw_id)
    except protocol.ProtocolError as exc:
        return exc.reason
    assert tag_at == len(datagram) - 32
    return (device_id, first, readings)


valid = st.builds(
    lambda device_id, first, payloads: protocol.encode_data(
        device_id, KEY, first, [(i * 1000, p) for i, p in enumerate(payloads)]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20),
    st.integers(0, 2**32 - 256),
    st.lists(st.binary(max_size=12), min_size=1, max_size=5),
)


def mutated() -> st.SearchStrategy[bytes]:
    return near_misses(valid)


any_datagram = st.one_of(
    valid, mutated(), st.binary(max_size=80), st.binary(max_size=60).map(lambda b: b"IB\x01\x01" + b)
)


@settings(max_examples=1500, deadline=None, database=None)
@given(any_datagram)
def test_fast_parser_matches_the_reference(datagram: bytes) -> None:
    assert fast(datagram) == reference(datagram)


def native(datagram: bytes):
    try:
        raw_id, first, readings, tag_at = ibp_native.parse_data_raw(datagram)
        device_id = fastpath.check_device_id(raw_id)
    except protocol.ProtocolError as exc:
        return exc.reason
    assert tag_at == len(datagram) - 32
    assert len(readings) == len(list(readings))
    return (device_id, first, list(readings))


@needs_native
@settings(max_examples=3000, deadline=None, database=None)
@given(any_datagram)
def test_native_parser_matches_the_reference(datagram: bytes) -> None:
    assert native(datagram) == reference(datagram) == fast(datagram)


@needs_native
@settings(max_examples=3000, deadline=None, database=None)
@given(payloads)
def test_native_payload_check_matches_the_reference(payload: bytes) -> None:
    assert ibp_native.payload_is_object(payload) is fastpath.payload_is_object(payload), payload


@needs_native
@settings(max_examples=500, deadline=None, database=None)
@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=20),
    st.integers(0, 2**32 - 256),
    st.lists(st.tuples(st.integers(0, 2**64 - 1), payloads), min_size=1, max_size=8),
    st.integers(0, 2**62),
    st.one_of(st.none(), st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=3)),
    st.binary(min_size=32, max_size=32),
)
def test_native_datagram_work_matches_the_reference(device_id, first, readings, now_ms, ranges, key) -> None:
    """Verify, payload check and record values of one whole datagram, both ways."""
    datagram = protocol.encode_data(device_id, KEY, first, readings)
    nid, nfirst, nreadings, tag_at = ibp_native.parse_data_raw(datagram)
    pid, pfirst, preadings, ptag_at = fastpath.parse_data_raw(datagram)
    assert (nid, nfirst, tag_at) == (pid, pfirst, ptag_at)
    for k in (KEY, key):
        assert ibp_native.verify(k, datagram, tag_at) is fastpath.verify(k, datagram, tag_at)
    bad = datagram[:-1] + bytes([datagram[-1] ^ 1])
    assert ibp_native.verify(KEY, bad, tag_at) is fastpath.verify(KEY, bad, tag_at) is False
    assert ibp_native.payloads_ok(nreadings) is fastpath.payloads_ok(preadings)
    ranges = None if ranges is None else [(first + lo, first + hi) for lo, hi in ranges]
    id_json = json.dumps(device_id).encode()
    assert list(
        ibp_native.build_records(nreadings, id_json, first, now_ms, ranges)
    ) == fastpath.build_records(preadings, id_json, first, now_ms, ranges)


@needs_native
@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=80),
)
def test_native_answers_are_byte_identical(device_id: str, value: int, key: bytes) -> None:
    raw = device_id.encode()
    assert ibp_native.encode_ack(raw, key, value) == protocol.encode_ack(device_id, key, value)
    retry = value & 0xFFFF
    assert ibp_native.encode_busy(raw, key, retry) == protocol.encode_busy(device_id, key, retry)


@needs_native
def test_native_edge_cases() -> None:
    assert ibp_native.API == hotpath.NATIVE_API
    assert not ibp_native.verify(KEY, b"short", 99)
    deep = b'{"a":' + b"[" * 800 + b"]" * 800 + b"}"
    assert ibp_native.payload_is_object(deep) and fastpath.payload_is_object(deep)
    for n in (4300, 4301):  # CPython refuses integer literals over 4,300 digits
        p = b'{"a":' + b"7" * n + b"}"
        assert ibp_native.payload_is_object(p) is fastpath.payload_is_object(p) is (n == 4300)
    p = b'{"a":' + b"7" * 4301 + b".0}"
    assert ibp_native.payload_is_object(p) and fastpath.payload_is_object(p)
    datagram = protocol.encode_data("d", KEY, 7, [(1, b"{}"), (2, b"[]")])
    readings = ibp_native.parse_data_raw(datagram)[2]
    assert readings[-1] == (2, b"[]") and readings[0] == (1, b"{}")
    with pytest.raises(IndexError):
        readings[2]


def test_hotpath_selection() -> None:
    forced = os.environ.get("IBP_NATIVE", "1") == "0"
    expected = "native" if ibp_native is not None and not forced else "python"
    assert hotpath.IMPL == expected, hotpath.WHY


def test_edge_cases_match() -> None:
    header = b"IB\x01\x01\x03abc"
    for datagram in [
        b"",
        b"I",
        b"IB\x01",
        b"IB\x01\x01",
        header + struct.pack(">IB", 0, 0) + b"\x00" * 32,  # count 0
        header + struct.pack(">IB", 2**32 - 1, 2) + b"\x00" * 32,  # overflow
        b"IB\x01\x01\x02\xff\xfe" + struct.pack(">IB", 0, 0) + b"\x00" * 32,  # bad id and count 0
        b"IB\x01\x01\x02\xff\xfe",  # bad id, truncated
    ]:
        assert fast(datagram) == reference(datagram), datagram


@given(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=64),
    st.integers(0, 2**32 - 1),
)
def test_answers_are_byte_identical(device_id: str, value: int) -> None:
    raw = device_id.encode()
    assert fastpath.encode_answer(raw, KEY, fastpath.ACK, value) == protocol.encode_ack(device_id, KEY, value)
    retry = value & 0xFFFF
    assert fastpath.encode_answer(raw, KEY, fastpath.BUSY, retry) == protocol.encode_busy(
        device_id, KEY, retry
    )


def test_payload_check_is_strict() -> None:
    assert fastpath.payload_is_object(b'{"a": [1, 2.5, null]}')
    for bad in (b"[1]", b'{"a": NaN}', b'{"a": Infinity}', b"\xff{}", '{"a":1}'.encode("utf-16"), b"{", b""):
        assert not fastpath.payload_is_object(bad), bad
