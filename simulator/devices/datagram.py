"""What a simulated device puts on the wire: its reading payloads and the size of its IBP/1 DATA datagrams.

One module for both, because the scenario validator must know, before a run, whether one reading fits
in ``flush.max_datagram_bytes``, and the fleet must never build a datagram over it: a datagram over the
gateway's ``max_datagram_bytes`` is dropped as ``oversized`` without an answer, and its device retries
the same bytes forever. Sizes follow docs/protocol.md (DATA) and the firmware's sender
(``firmware/lib/ibpcore/src/ibp/sender.cpp``: overhead of the device id, then readings while they fit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ibp import protocol as ibp

if TYPE_CHECKING:
    from simulator.devices.state import Device

DEFAULT_MAX_DATAGRAM_BYTES = (
    1472  # one Ethernet MTU of UDP payload (docs/protocol.md), the firmware's default
)
# header (4), id_len (1), first_seq (4), count (1), HMAC tag; the device id's bytes come on top
DATA_OVERHEAD = 4 + 1 + 4 + 1 + ibp.TAG_LEN
READING_OVERHEAD = 8 + 2  # timestamp_ms, payload_len
# A run id is "<UTC yyyymmddThhmmssZ>-<scenario name>-<6 hex digits>" (simulator/orchestration/runner.py new_run_id).
RUN_ID_EXTRA = 16 + 1 + 1 + 6
# judge_answer's verdicts on an answer no device can act on
BAD_ANSWER = (0, -1, 0)  # malformed, unknown device, or a tag that is not the device's
AUTH_FAIL_ANSWER = (ibp.T_AUTH_FAIL, -1, 0)  # carries no device: whoever sent last times out
# payload_bytes below this holds no pad: the JSON body without "pad" is about this long (plus the run id)
_PAD_BASE = 60


def data_overhead(device_id: str) -> int:
    """Bytes of a DATA datagram besides its readings."""
    return DATA_OVERHEAD + len(device_id.encode())


def reading_size(payload: bytes) -> int:
    return READING_OVERHEAD + len(payload)


def id_width(count: int) -> int:
    """Digits of a device id's number: ids of one fleet all have the same length."""
    return max(6, len(str(count - 1)))


def run_id_len(scenario_name: str) -> int:
    return len(scenario_name) + RUN_ID_EXTRA


def pad_for(payload_bytes: int, run_id_len: int) -> int:
    """Padding characters that bring a payload to about ``reading.payload_bytes`` (0 when the run id is longer)."""
    return max(0, payload_bytes - _PAD_BASE - run_id_len)


def payload(run_id: str, pad: int, idx: int, seq: int) -> bytes:
    """Deterministic sensor values from (device index, seq): no per-reading storage beyond the timestamp.

    Every field has a fixed width (temp 18.0..29.9, humidity 35.0..74.9, battery 3300..4199 mV), so all
    payloads of a run have the same length: :func:`payload_len` is exact.
    """
    temp = 18.0 + ((seq * 7919 + idx * 104729) % 120) / 10
    hum = 35.0 + ((seq * 31 + idx * 17) % 400) / 10
    body = f'{{"run":"{run_id}","temp_c":{temp:.1f},"hum_pct":{hum:.1f},"bat_mv":{3300 + idx % 900}'
    if pad:
        body += f',"pad":"{"x" * pad}"'
    return (body + "}").encode()


def payload_len(payload_bytes: int, run_id_len: int) -> int:
    """Length of every payload of a run whose run id has ``run_id_len`` characters."""
    return len(payload("r" * run_id_len, pad_for(payload_bytes, run_id_len), 0, 0))


def one_reading_bytes(device_id_len: int, payload_bytes: int, run_id_len: int) -> int:
    """The smallest DATA datagram of such a device: one reading."""
    return DATA_OVERHEAD + device_id_len + READING_OVERHEAD + payload_len(payload_bytes, run_id_len)


def readings_per_datagram(
    batch_size: int, max_bytes: int, device_id_len: int, payload_bytes: int, run_id_len: int
) -> int:
    """Readings in a full datagram: ``batch_size`` or fewer, as many as ``max_bytes`` holds (0: not one)."""
    room = max_bytes - DATA_OVERHEAD - device_id_len
    return max(0, min(batch_size, room // (READING_OVERHEAD + payload_len(payload_bytes, run_id_len))))


def judge_answer(data: bytes, by_id: Mapping[str, Device]) -> tuple[int, int, int]:
    """What the fleet makes of an answer: ``(type, device index, value)`` for an ACK (value: its
    sequence) or BUSY (retry-after, ms) whose tag is its device's, else ``AUTH_FAIL_ANSWER`` or
    ``BAD_ANSWER``. The reference of ``ibp_native.DeviceBook.check`` (tests/simulator/test_native_device.py)."""
    try:
        mtype, device_id, value, tag_at = ibp.answer_fields(data)
    except ibp.ProtocolError:
        return BAD_ANSWER
    if mtype == ibp.T_AUTH_FAIL:
        return AUTH_FAIL_ANSWER
    dev = by_id.get(device_id)
    if dev is None or not ibp.verify_answer(dev.key, data, tag_at):
        return BAD_ANSWER
    return mtype, dev.idx, value
