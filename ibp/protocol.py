"""IBP/1 wire format (docs/protocol.md) and the original pilot's legacy formats.

Pure functions on bytes: no I/O, no state. The gateway, the simulator and the vectors generator all
use this module; the firmware's C++ encoder is held byte-identical by ``tests/vectors/ibp1.json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"IB"
VERSION = 1
T_DATA = 0x01
T_ACK = 0x81
T_BUSY = 0x82
T_AUTH_FAIL = 0x83
LEGACY_MAGIC = b"\xaa\x55"
TAG_LEN = 32
MAX_ID_LEN = 64
MAX_COUNT = 255
MAX_SEQ = 0xFFFFFFFF
LEGACY_ID_LEN = 16
KEY_DERIVATION_LABEL = b"ibp1-device-key:"

_HEADER = struct.Struct(">2sBB")
_READING = struct.Struct(">QH")


class ProtocolError(ValueError):
    """A datagram that cannot be accepted. ``reason`` is the metrics label (see docs/protocol.md)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reading:
    seq: int
    timestamp_ms: int
    payload: bytes  # UTF-8 JSON object text, exactly as sent


@dataclass(frozen=True, slots=True)
class DataBatch:
    """A parsed DATA datagram. ``signed`` is the byte range the tag covers; verify before trusting."""

    device_id: str
    first_seq: int
    readings: tuple[Reading, ...]
    signed: bytes
    tag: bytes

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.readings) - 1

    def verify(self, key: bytes) -> bool:
        return hmac.compare_digest(hmac.new(key, self.signed, hashlib.sha256).digest(), self.tag)


@dataclass(frozen=True, slots=True)
class Ack:
    device_id: str
    ack_seq: int


@dataclass(frozen=True, slots=True)
class Busy:
    device_id: str
    retry_after_ms: int


@dataclass(frozen=True, slots=True)
class AuthFail:
    pass


@dataclass(frozen=True, slots=True)
class LegacyReading:
    device_id: str
    seq: int
    timestamp_ms: int
    payload: bytes  # JSON text of the payload object
    proto: str  # "legacy-bin" or "legacy-json"


def derive_device_key(master_key: bytes, device_id: str) -> bytes:
    """Key of a simulated-fleet device: HMAC-SHA256(master_key, "ibp1-device-key:" + device_id)."""
    return hmac.new(master_key, KEY_DERIVATION_LABEL + device_id.encode(), hashlib.sha256).digest()


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()


def _id_bytes(device_id: str) -> bytes:
    raw = device_id.encode("utf-8")
    if not 1 <= len(raw) <= MAX_ID_LEN:
        raise ValueError(f"device_id must be 1..{MAX_ID_LEN} UTF-8 bytes, got {len(raw)}")
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise ValueError("device_id must not contain NUL or control characters")
    return raw


# ---------------------------------------------------------------- encoders


def encode_data(device_id: str, key: bytes, first_seq: int, readings: list[tuple[int, bytes]]) -> bytes:
    """DATA datagram for consecutive readings ``[(timestamp_ms, payload_json_bytes), ...]``."""
    if not 1 <= len(readings) <= MAX_COUNT:
        raise ValueError(f"a batch holds 1..{MAX_COUNT} readings, got {len(readings)}")
    if first_seq < 0 or first_seq + len(readings) - 1 > MAX_SEQ:
        raise ValueError("sequence out of u32 range")
    raw_id = _id_bytes(device_id)
    parts = [
        _HEADER.pack(MAGIC, VERSION, T_DATA),
        bytes([len(raw_id)]),
        raw_id,
        struct.pack(">IB", first_seq, len(readings)),
    ]
    for ts, payload in readings:
        if len(payload) > 0xFFFF:
            raise ValueError("payload longer than 65535 bytes")
        parts.append(_READING.pack(ts, len(payload)))
        parts.append(payload)
    body = b"".join(parts)
    return body + _tag(key, body)


def encode_ack(device_id: str, key: bytes, ack_seq: int) -> bytes:
    raw_id = _id_bytes(device_id)
    body = _HEADER.pack(MAGIC, VERSION, T_ACK) + bytes([len(raw_id)]) + raw_id + struct.pack(">I", ack_seq)
    return body + _tag(key, body)


def encode_busy(device_id: str, key: bytes, retry_after_ms: int) -> bytes:
    raw_id = _id_bytes(device_id)
    retry = max(0, min(0xFFFF, int(retry_after_ms)))
    body = _HEADER.pack(MAGIC, VERSION, T_BUSY) + bytes([len(raw_id)]) + raw_id + struct.pack(">H", retry)
    return body + _tag(key, body)


AUTH_FAIL_DATAGRAM = _HEADER.pack(MAGIC, VERSION, T_AUTH_FAIL)


def encode_legacy_binary(device_id: str, seq: int, payload: dict[str, Any]) -> bytes:
    raw_id = device_id.encode("utf-8")
    if len(raw_id) > LEGACY_ID_LEN:
        raise ValueError(f"legacy device ids are at most {LEGACY_ID_LEN} bytes")
    return (
        LEGACY_MAGIC
        + raw_id.ljust(LEGACY_ID_LEN, b"\x00")
        + struct.pack(">I", seq)
        + json.dumps(payload).encode()
    )


def encode_legacy_json(device_id: str, seq: int, timestamp_s: float, data: dict[str, Any]) -> bytes:
    return json.dumps(
        {"device_id": device_id, "sequence": seq, "timestamp": timestamp_s, "data": data}
    ).encode()


# ---------------------------------------------------------------- decoders


def _check_header(datagram: bytes, expected_type: int | None) -> int:
    if len(datagram) < _HEADER.size:
        raise ProtocolError("truncated", "shorter than the header")
    magic: bytes
    version: int
    mtype: int
    magic, version, mtype = _HEADER.unpack_from(datagram)
    if magic != MAGIC:
        raise ProtocolError("bad_magic")
    if version != VERSION:
        raise ProtocolError("bad_version", f"version {version}")
    if expected_type is not None and mtype != expected_type:
        raise ProtocolError("bad_type", f"type 0x{mtype:02x}")
    return mtype


def _read_id(datagram: bytes, offset: int) -> tuple[str, int]:
    if offset >= len(datagram):
        raise ProtocolError("truncated", "no device id length")
    n = datagram[offset]
    if not 1 <= n <= MAX_ID_LEN:
        raise ProtocolError("bad_device_id", f"id length {n}")
    end = offset + 1 + n
    if end > len(datagram):
        raise ProtocolError("truncated", "device id runs past the end")
    return check_device_id(datagram[offset + 1 : end]), end


def check_device_id(raw: bytes) -> str:
    """A device id's bytes as text: UTF-8 without control characters (the gateway's fast path uses this too)."""
    try:
        device_id = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("bad_device_id", "not UTF-8") from None
    if any(b < 0x20 or b == 0x7F for b in raw):
        raise ProtocolError("bad_device_id", "control character")
    return device_id


def parse_data(datagram: bytes) -> DataBatch:
    """Parse (not verify) a DATA datagram; raises ProtocolError with the metrics reason."""
    _check_header(datagram, T_DATA)
    device_id, off = _read_id(datagram, 4)
    if off + 5 + TAG_LEN > len(datagram):
        raise ProtocolError("truncated", "no sequence/count")
    first_seq, count = struct.unpack_from(">IB", datagram, off)
    off += 5
    if count == 0:
        raise ProtocolError("invalid", "count 0")
    if first_seq + count - 1 > MAX_SEQ:
        raise ProtocolError("invalid", "sequence overflow")
    end = len(datagram) - TAG_LEN
    readings = []
    for i in range(count):
        if off + _READING.size > end:
            raise ProtocolError("truncated", f"reading {i} header runs past the end")
        ts, plen = _READING.unpack_from(datagram, off)
        off += _READING.size
        if off + plen > end:
            raise ProtocolError("truncated", f"reading {i} payload runs past the end")
        readings.append(Reading(first_seq + i, ts, datagram[off : off + plen]))
        off += plen
    if off != end:
        raise ProtocolError("truncated", "trailing bytes before the tag")
    return DataBatch(device_id, first_seq, tuple(readings), datagram[:end], datagram[end:])


def check_payload(payload: bytes) -> None:
    """Raise ProtocolError('malformed_json') unless ``payload`` is a UTF-8 JSON object."""
    try:
        value = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("malformed_json") from None
    if not isinstance(value, dict):
        raise ProtocolError("malformed_json", "payload is not a JSON object")


def parse_response(datagram: bytes, key: bytes | None = None) -> Ack | Busy | AuthFail:
    """Decode a gateway answer. With ``key``, ACK/BUSY tags are verified (ProtocolError 'auth_failed')."""
    mtype = _check_header(datagram, None)
    if mtype == T_AUTH_FAIL:
        if len(datagram) != _HEADER.size:
            raise ProtocolError("truncated", "AUTH_FAIL carries nothing")
        return AuthFail()
    if mtype not in (T_ACK, T_BUSY):
        raise ProtocolError("bad_type", f"type 0x{mtype:02x}")
    device_id, off = _read_id(datagram, 4)
    size = 4 if mtype == T_ACK else 2
    if off + size + TAG_LEN != len(datagram):
        raise ProtocolError("truncated", "wrong length")
    if key is not None and not hmac.compare_digest(_tag(key, datagram[: off + size]), datagram[off + size :]):
        raise ProtocolError("auth_failed", "answer tag does not verify")
    if mtype == T_ACK:
        return Ack(device_id, struct.unpack_from(">I", datagram, off)[0])
    return Busy(device_id, struct.unpack_from(">H", datagram, off)[0])


def answer_fields(datagram: bytes) -> tuple[int, str, int, int]:
    """An answer as ``(type, device_id, value, tag_offset)``, unverified: ``value`` is the ACK's sequence or
    BUSY's retry-after (ms); AUTH_FAIL is ``(T_AUTH_FAIL, "", 0, 4)``. The reference of the simulator's
    native ``ibp_native.parse_answer``; same ProtocolError reasons as :func:`parse_response`."""
    resp = parse_response(datagram)
    if isinstance(resp, AuthFail):
        return T_AUTH_FAIL, "", 0, _HEADER.size
    at = _HEADER.size + 1 + datagram[_HEADER.size]
    if isinstance(resp, Ack):
        return T_ACK, resp.device_id, resp.ack_seq, at + 4
    return T_BUSY, resp.device_id, resp.retry_after_ms, at + 2


def verify_answer(key: bytes, datagram: bytes, tag_offset: int) -> bool:
    """True when the answer's tag is HMAC-SHA256(key, datagram[:tag_offset]) (constant time)."""
    return hmac.compare_digest(_tag(key, datagram[:tag_offset]), datagram[tag_offset:])


def parse_legacy(datagram: bytes) -> LegacyReading:
    """Decode a datagram in one of the original pilot's formats."""
    if datagram[:2] == LEGACY_MAGIC:
        if len(datagram) < 2 + LEGACY_ID_LEN + 4:
            raise ProtocolError("truncated", "legacy binary header")
        raw_id = datagram[2 : 2 + LEGACY_ID_LEN].rstrip(b"\x00")
        try:
            device_id = raw_id.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("bad_device_id", "not UTF-8") from None
        if not device_id or any(b < 0x20 or b == 0x7F for b in raw_id):
            raise ProtocolError("bad_device_id")
        (seq,) = struct.unpack_from(">I", datagram, 2 + LEGACY_ID_LEN)
        payload = datagram[2 + LEGACY_ID_LEN + 4 :]
        check_payload(payload)
        return LegacyReading(device_id, seq, 0, payload, "legacy-bin")
    try:
        obj = json.loads(datagram)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("malformed_json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed_json", "not a JSON object")
    json_id, seq, ts, data = (
        obj.get("device_id"),
        obj.get("sequence"),
        obj.get("timestamp", 0),
        obj.get("data", {}),
    )
    if not isinstance(json_id, str) or not json_id:
        raise ProtocolError("bad_device_id", "legacy JSON needs a string device_id")
    try:  # JSON escapes can carry lone surrogates, which are not UTF-8
        raw_id = json_id.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("bad_device_id", "not UTF-8") from None
    if len(raw_id) > MAX_ID_LEN or any(b < 0x20 or b == 0x7F for b in raw_id):
        raise ProtocolError("bad_device_id", f"1..{MAX_ID_LEN} UTF-8 bytes without control characters")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise ProtocolError("invalid", "legacy JSON needs an integer sequence")
    if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
        raise ProtocolError("invalid", "legacy JSON timestamp must be a number of seconds")
    if not isinstance(data, dict):
        raise ProtocolError("malformed_json", "legacy JSON data must be an object")
    return LegacyReading(
        json_id, seq, int(ts * 1000), json.dumps(data, separators=(",", ":")).encode(), "legacy-json"
    )


def classify(datagram: bytes) -> str:
    """'ibp1', 'legacy-bin', 'legacy-json' or 'unknown' from the first bytes."""
    if datagram[:2] == MAGIC:
        return "ibp1"
    if datagram[:2] == LEGACY_MAGIC:
        return "legacy-bin"
    if datagram.lstrip()[:1] == b"{":
        return "legacy-json"
    return "unknown"
