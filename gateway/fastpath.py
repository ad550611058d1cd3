"""Fast-path IBP/1 DATA parsing for the gateway's hot loop.

Same decisions and the same ``ProtocolError`` reasons as :func:`ibp.protocol.parse_data` (the reference,
held equal by tests/gateway/test_fastpath.py), minus the per-reading objects: readings come back as
``(timestamp_ms, payload)`` tuples and the device id as raw bytes, so a known device costs no UTF-8
decoding or character checks (the caller caches them per raw id).
"""

from __future__ import annotations

import hmac
import json
import struct
from collections.abc import Callable, Sequence
from typing import Any

from ibp.protocol import (
    LEGACY_MAGIC,
    MAGIC,
    MAX_ID_LEN,
    MAX_SEQ,
    TAG_LEN,
    VERSION,
    ProtocolError,
    check_device_id,
    parse_legacy,
)

_SEQ_COUNT = struct.Struct(">IB")
_READING = struct.Struct(">QH")
_HEAD_OK = MAGIC + bytes([VERSION, 0x01])


def parse_data_raw(datagram: bytes) -> tuple[bytes, int, list[tuple[int, bytes]], int]:
    """``(raw_device_id, first_seq, [(timestamp_ms, payload)], tag_offset)``; the id is NOT yet checked.

    Call :func:`check_device_id` on ``raw_device_id`` unless it is already known to be valid.
    """
    size = len(datagram)
    if datagram[:4] != _HEAD_OK:
        if size < 4:
            raise ProtocolError("truncated", "shorter than the header")
        if datagram[:2] != MAGIC:
            raise ProtocolError("bad_magic")
        if datagram[2] != VERSION:
            raise ProtocolError("bad_version", f"version {datagram[2]}")
        raise ProtocolError("bad_type", f"type 0x{datagram[3]:02x}")
    if size <= 4:
        raise ProtocolError("truncated", "no device id length")
    n = datagram[4]
    if not 1 <= n <= MAX_ID_LEN:
        raise ProtocolError("bad_device_id", f"id length {n}")
    off = 5 + n
    if off > size:
        raise ProtocolError("truncated", "device id runs past the end")
    raw_id = datagram[5:off]
    if off + 5 + TAG_LEN > size:
        # the reference validates the id before this length check: keep its reason
        check_device_id(raw_id)
        raise ProtocolError("truncated", "no sequence/count")
    first_seq, count = _SEQ_COUNT.unpack_from(datagram, off)
    off += 5
    end = size - TAG_LEN
    readings: list[tuple[int, bytes]] = []
    if count and first_seq + count - 1 <= MAX_SEQ:
        unpack = _READING.unpack_from
        for _ in range(count):
            if off + 10 > end:
                break
            ts, plen = unpack(datagram, off)
            off += 10
            if off + plen > end:
                off = -1
                break
            readings.append((ts, datagram[off : off + plen]))
            off += plen
    if not count or len(readings) != count or off != end:
        # rare: let the reference produce the exact reason (id first, then count/overflow, then lengths)
        check_device_id(raw_id)
        if count == 0:
            raise ProtocolError("invalid", "count 0")
        if first_seq + count - 1 > MAX_SEQ:
            raise ProtocolError("invalid", "sequence overflow")
        raise ProtocolError("truncated", "readings do not fill the datagram up to the tag")
    return raw_id, first_seq, readings, end


ACK = struct.Struct(">I")
BUSY = struct.Struct(">H")


def encode_answer(raw_id: bytes, key: bytes, kind: struct.Struct, value: int) -> bytes:
    """ACK (``kind=ACK``, value = ack_seq) or BUSY (``kind=BUSY``, value = retry_after_ms), byte-identical to
    :func:`ibp.protocol.encode_ack` / :func:`~ibp.protocol.encode_busy` for an already valid id."""
    mtype = b"\x81" if kind is ACK else b"\x82"
    body = MAGIC + bytes([VERSION]) + mtype + bytes([len(raw_id)]) + raw_id + kind.pack(value)
    return body + hmac.digest(key, body, "sha256")


def encode_ack(raw_id: bytes, key: bytes, ack_seq: int) -> bytes:
    return encode_answer(raw_id, key, ACK, ack_seq)


def encode_busy(raw_id: bytes, key: bytes, retry_after_ms: int) -> bytes:
    return encode_answer(raw_id, key, BUSY, retry_after_ms)


def verify(key: bytes, datagram: bytes, tag_offset: int) -> bool:
    return hmac.compare_digest(hmac.digest(key, datagram[:tag_offset], "sha256"), datagram[tag_offset:])


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


# the C scanner: one call, no wrapper layers (an instance attribute that typeshed does not declare)
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]
_JSON_SPACE = " \t\n\r"


def payload_is_object(payload: bytes) -> bool:
    """True when ``payload`` is a UTF-8 JSON object (strict: no NaN/Infinity, no UTF-16 guessing)."""
    try:
        text = payload.decode("utf-8")
        if text[:1] != "{":
            text = text.lstrip(_JSON_SPACE)
            if text[:1] != "{":
                return False
        value, end = _SCAN(text, 0)
    except (UnicodeDecodeError, ValueError, StopIteration, RecursionError):
        return False
    return type(value) is dict and (end == len(text) or not text[end:].strip(_JSON_SPACE))


def payloads_ok(readings: Sequence[tuple[int, bytes]]) -> bool:
    """True when every reading's payload is a JSON object."""
    return all(payload_is_object(payload) for _, payload in readings)


VALUE = b'{"device_id":%b,"seq":%d,"device_ts_ms":%d,"gateway_ts_ms":%d,"proto":"%b","payload":%b}'


def build_records(
    readings: Sequence[tuple[int, bytes]],
    id_json: bytes,
    first: int,
    now_ms: int,
    ranges: list[tuple[int, int]] | None = None,
) -> list[tuple[bytes, int]]:
    """The Kafka record values ``[(value, now_ms)]``; with ``ranges``, only the sequence numbers inside one
    of the inclusive ``(lo, hi)`` ranges."""
    if ranges is None:
        return [
            (VALUE % (id_json, first + i, ts, now_ms, b"ibp1", payload), now_ms)
            for i, (ts, payload) in enumerate(readings)
        ]
    return [
        (VALUE % (id_json, first + i, ts, now_ms, b"ibp1", payload), now_ms)
        for i, (ts, payload) in enumerate(readings)
        if any(lo <= first + i <= hi for lo, hi in ranges)
    ]


def legacy_record(datagram: bytes, now_ms: int) -> tuple[bytes, bytes]:
    """``(key, value)`` of a legacy datagram (binary or JSON, :func:`ibp.protocol.parse_legacy`): the raw device
    id as the Kafka key and the record value; ``ProtocolError('malformed_json')`` unless the payload is a JSON
    object by :func:`payload_is_object`'s strict rule (``parse_legacy`` alone lets NaN and UTF-16 through)."""
    legacy = parse_legacy(datagram)
    if not payload_is_object(legacy.payload):
        raise ProtocolError("malformed_json")
    value = VALUE % (
        json.dumps(legacy.device_id).encode(),
        legacy.seq,
        legacy.timestamp_ms,
        now_ms,
        legacy.proto.encode(),
        legacy.payload,
    )
    return legacy.device_id.encode(), value


def legacy_binary_record(datagram: bytes, now_ms: int) -> tuple[bytes, bytes]:
    """:func:`legacy_record` for the binary format only (``ProtocolError('bad_magic')`` for anything else): the
    reference of the native ``legacy_binary_record``."""
    if datagram[:2] != LEGACY_MAGIC:
        raise ProtocolError("bad_magic")
    return legacy_record(datagram, now_ms)
