"""The gateway's per-datagram codec: the native extension ``ibp_native`` (gateway/native/, Rust) when it is
built and importable, else the pure-Python :mod:`gateway.fastpath`. Both have the same functions, decisions,
``ProtocolError`` reasons and bytes (tests/gateway/test_fastpath.py holds them equal).

``IBP_NATIVE=0`` in the environment forces the pure-Python path (tests run the gateway both ways).
``IMPL`` says which one is in use (``"native"`` or ``"python"``), ``WHY`` why (for the start-up log line).

Functions: ``parse_data_raw(datagram) -> (raw_id, first_seq, readings, tag_offset)`` (``readings`` is a
sequence of ``(timestamp_ms, payload)``: a list in Python, an ``ibp_native.Readings`` natively; pass it
back only to the same implementation), ``check_device_id``, ``verify``, ``payloads_ok(readings)``,
``build_records(readings, id_json, first, now_ms, ranges=None)`` (a sequence of ``(value, now_ms)``: a list in
Python, a lazy ``ibp_native.Records`` natively, whose values the native ``RecordBatch`` writes in place),
``encode_ack``, ``encode_busy``, ``legacy_binary_record(datagram, now_ms) -> (key, value)`` (the original
pilot's binary datagram as its Kafka key and record value; ``legacy_record`` takes both legacy formats, in
Python). The Kafka batches that take the records are in :mod:`gateway.batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from gateway import fastpath
from ibp import native, protocol

NATIVE_API = native.API  # ibp/native.py: the build must match it, or it is not used
ENV = native.ENV

Readings = Sequence[tuple[int, bytes]]
"""``(timestamp_ms, payload)`` per reading: a list in Python, an ``ibp_native.Readings`` natively."""


class Codec(Protocol):
    """What both implementations provide; mypy checks :mod:`gateway.fastpath` against it, and the native
    module is held to it by tests/gateway/test_fastpath.py (it is compiled: mypy cannot read it)."""

    def parse_data_raw(self, datagram: bytes) -> tuple[bytes, int, Readings, int]: ...
    def verify(self, key: bytes, datagram: bytes, tag_offset: int) -> bool: ...
    def payloads_ok(self, readings: Readings) -> bool: ...
    def build_records(
        self,
        readings: Readings,
        id_json: bytes,
        first: int,
        now_ms: int,
        ranges: list[tuple[int, int]] | None = None,
    ) -> Sequence[tuple[bytes, int]]: ...
    def encode_ack(self, raw_id: bytes, key: bytes, ack_seq: int) -> bytes: ...
    def encode_busy(self, raw_id: bytes, key: bytes, retry_after_ms: int) -> bytes: ...
    def payload_is_object(self, payload: bytes) -> bool: ...
    def legacy_binary_record(self, datagram: bytes, now_ms: int) -> tuple[bytes, bytes]: ...


def _load() -> tuple[Codec | None, str]:
    module, why = native.load()
    return cast(Codec, module) if module is not None else None, why


_native, WHY = _load()
IMPL = "native" if _native is not None else "python"
_impl: Codec = _native if _native is not None else fastpath

parse_data_raw = _impl.parse_data_raw
verify = _impl.verify
payloads_ok = _impl.payloads_ok
build_records = _impl.build_records
encode_ack = _impl.encode_ack
encode_busy = _impl.encode_busy
payload_is_object = _impl.payload_is_object
legacy_binary_record = _impl.legacy_binary_record
legacy_record = fastpath.legacy_record  # legacy JSON: rare, and json.loads is C already
check_device_id = protocol.check_device_id  # once per new device: not on the hot path


def native_module() -> Any:
    """The imported ``ibp_native`` itself, for its classes (``RecordBatch``); only when ``IMPL == "native"``."""
    if _native is None:
        raise RuntimeError(f"ibp_native is not in use: {WHY}")
    return _native
