"""The legacy binary datagram's record: the native ``legacy_binary_record`` (gateway/native/src/legacy.rs) and
its Python reference (``fastpath.legacy_binary_record``) agree on every datagram, valid or not: the same
decision, the same ProtocolError reason, the same key and value bytes. The reference itself is held to the
original decoder (``ibp.protocol.parse_legacy``) plus the strict payload rule, so that swapping the gateway's
legacy path for one call changed no decision.
"""

from __future__ import annotations

import json
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import fastpath
from ibp import protocol
from tests.gateway.native_ext import ibp_native, needs_native
from tests.gateway.payload_strategies import json_objects, near_misses, payloads

NOW_MS = 1_796_000_000_123

# ids as devices send them: printable ASCII, JSON's special characters, non-ASCII and astral-plane text
# (json.dumps escapes those as \uXXXX and surrogate pairs: the native writer must match byte for byte)
ids = st.text(
    st.characters(min_codepoint=0x20, blacklist_categories=("Cs", "Cc")) | st.sampled_from('"\\/é€😀'),
    min_size=1,
    max_size=8,
).filter(lambda s: len(s.encode()) <= protocol.LEGACY_ID_LEN)


def _datagram(raw_id: bytes, seq: int, payload: bytes) -> bytes:
    return (
        protocol.LEGACY_MAGIC
        + raw_id.ljust(protocol.LEGACY_ID_LEN, b"\x00")
        + struct.pack(">I", seq)
        + payload
    )


valid = st.builds(
    lambda device_id, seq, payload: _datagram(device_id.encode(), seq, payload),
    ids,
    st.integers(0, 2**32 - 1),
    json_objects,
)
near = st.builds(  # a good header before every kind of payload, near misses included
    lambda device_id, seq, payload: _datagram(device_id.encode(), seq, payload),
    ids,
    st.integers(0, 2**32 - 1),
    payloads,
)


def mutated() -> st.SearchStrategy[bytes]:
    return near_misses(valid)


# the id field's edge cases: all NULs, interior NUL, control characters, DEL, bad UTF-8, a full 16 bytes
odd_ids = st.sampled_from(
    [b"", b"\x00" * 16, b"a\x00b", b"\x01abc", b"ab\x7f", b"\xff\xfe", b"\xc3", b"x" * 16, "é".encode() * 8]
)
edge = st.builds(
    lambda raw, seq, payload: _datagram(raw, seq, payload), odd_ids, st.integers(0, 2**32 - 1), payloads
)
anything = (
    valid
    | near
    | mutated()
    | edge
    | st.binary(max_size=64)
    | payloads.map(lambda p: protocol.LEGACY_MAGIC + p)
)


def _run(fn, datagram: bytes):
    try:
        return fn(datagram, NOW_MS)
    except protocol.ProtocolError as exc:
        return exc.reason


def _original(datagram: bytes):
    """What the gateway decided before the one-call codec: parse_legacy, the strict check, the % format."""
    if datagram[:2] != protocol.LEGACY_MAGIC:
        return "bad_magic"
    try:
        legacy = protocol.parse_legacy(datagram)
    except protocol.ProtocolError as exc:
        return exc.reason
    if not fastpath.payload_is_object(legacy.payload):
        return "malformed_json"
    value = fastpath.VALUE % (
        json.dumps(legacy.device_id).encode(),
        legacy.seq,
        0,
        NOW_MS,
        b"legacy-bin",
        legacy.payload,
    )
    return legacy.device_id.encode(), value


@settings(max_examples=1500, deadline=None)
@given(anything)
def test_reference_keeps_the_original_decisions(datagram: bytes) -> None:
    assert _run(fastpath.legacy_binary_record, datagram) == _original(datagram)


@needs_native
@settings(max_examples=3000, deadline=None)
@given(anything)
def test_native_equals_reference(datagram: bytes) -> None:
    assert _run(ibp_native.legacy_binary_record, datagram) == _run(fastpath.legacy_binary_record, datagram)


@needs_native
@settings(max_examples=1000, deadline=None)
@given(valid)
def test_native_builds_the_same_record_for_valid_datagrams(datagram: bytes) -> None:
    record = ibp_native.legacy_binary_record(datagram, NOW_MS)
    assert record == fastpath.legacy_binary_record(datagram, NOW_MS)
    assert json.loads(record[1])["device_id"] == record[0].decode()


@needs_native
def test_native_record_is_the_documented_json() -> None:
    datagram = protocol.encode_legacy_binary('s"\\é😀', 7, {"t": 21.5})
    key, value = ibp_native.legacy_binary_record(datagram, NOW_MS)
    assert key == 's"\\é😀'.encode()
    assert json.loads(value) == {
        "device_id": 's"\\é😀',
        "seq": 7,
        "device_ts_ms": 0,
        "gateway_ts_ms": NOW_MS,
        "proto": "legacy-bin",
        "payload": {"t": 21.5},
    }
    assert b"\\ud83d\\ude00" in value  # json.dumps's escapes, byte for byte


def test_reference_refuses_the_json_format() -> None:
    """The binary call takes the binary format only; legacy JSON goes through ``legacy_record``."""
    datagram = protocol.encode_legacy_json("dev-1", 3, 1.5, {"t": 1})
    assert _run(fastpath.legacy_binary_record, datagram) == "bad_magic"
    key, value = fastpath.legacy_record(datagram, NOW_MS)
    assert key == b"dev-1"
    assert json.loads(value)["proto"] == "legacy-json"
    assert json.loads(value)["device_ts_ms"] == 1500
