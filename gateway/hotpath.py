"""The gateway's per-datagram codec: the native extension ``ibp_native`` (gateway/native/, Rust) when it is
built and importable, else the pure-Python :mod:`gateway.fastpath`. Both have the same functions, decisions,
``ProtocolError`` reasons and bytes (tests/gateway/test_fastpath.py holds them equal).

``IBP_NATIVE=0`` in the environment forces the pure-Python path (tests run the gateway both ways).
``IMPL`` says which one is in use (``"native"`` or ``"python"``), ``WHY`` why (for the start-up log line).

Functions: ``parse_data_raw(datagram) -> (raw_id, first_seq, readings, tag_offset)`` (``readings`` is a
sequence of ``(timestamp_ms, payload)``: a list in Python, an ``ibp_native.Readings`` natively; pass it
back only to the same implementation), ``check_device_id``, ``verify``, ``payloads_ok(readings)``,
``build_records(readings, id_json, first, now_ms, ranges=None)``, ``encode_ack``, ``encode_busy``.
"""

from __future__ import annotations

import os

from gateway import fastpath

NATIVE_API = 1  # must equal ibp_native.API (gateway/native/src/lib.rs): a stale build is not used
ENV = "IBP_NATIVE"


def _load():
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None, f"{ENV}=0"
    try:
        import ibp_native
    except ImportError as exc:
        return None, f"ibp_native not built ({exc}); make setup builds it when cargo is installed"
    if getattr(ibp_native, "API", None) != NATIVE_API:
        return (
            None,
            f"ibp_native API {getattr(ibp_native, 'API', None)} != {NATIVE_API}: rebuild with make setup",
        )
    return ibp_native, "ibp_native imported"


_native, WHY = _load()
IMPL = "native" if _native is not None else "python"
_impl = _native if _native is not None else fastpath

parse_data_raw = _impl.parse_data_raw
verify = _impl.verify
payloads_ok = _impl.payloads_ok
build_records = _impl.build_records
encode_ack = _impl.encode_ack
encode_busy = _impl.encode_busy
payload_is_object = _impl.payload_is_object
check_device_id = fastpath.check_device_id  # once per new device: not on the hot path
