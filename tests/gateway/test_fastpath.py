"""The fast-path parser and answer encoder agree with the reference codec (gateway/protocol.py)."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import fastpath, protocol

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


@st.composite
def mutated(draw):
    base = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(base)))
        op = draw(st.integers(0, 3))
        if op == 0 and i < len(base):
            base[i] = draw(st.integers(0, 255))
        elif op == 1:
            del base[i:]
        elif op == 2:
            base[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del base[i : i + draw(st.integers(1, 8))]
    return bytes(base)


@settings(max_examples=1500, deadline=None, database=None)
@given(
    st.one_of(
        valid, mutated(), st.binary(max_size=80), st.binary(max_size=60).map(lambda b: b"IB\x01\x01" + b)
    )
)
def test_fast_parser_matches_the_reference(datagram: bytes) -> None:
    assert fast(datagram) == reference(datagram)


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
