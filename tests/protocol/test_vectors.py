"""The reference codec reproduces every shared test vector byte for byte (tests/vectors/ibp1.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ibp import protocol as p

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "ibp1.json").read_text())["vectors"]


def by_kind(kind: str) -> list[dict]:
    return [v for v in VECTORS if v["kind"] == kind]


@pytest.mark.parametrize("v", by_kind("data"), ids=lambda v: v["name"])
def test_data_encodes_and_parses(v: dict) -> None:
    key = bytes.fromhex(v["key_hex"])
    readings = [(r["timestamp_ms"], r["payload"].encode()) for r in v["readings"]]
    dgram = p.encode_data(v["device_id"], key, v["first_seq"], readings)
    assert dgram.hex() == v["datagram_hex"]
    batch = p.parse_data(dgram)
    assert batch.verify(key)
    assert batch.device_id == v["device_id"]
    assert [(r.seq, r.timestamp_ms, r.payload) for r in batch.readings] == [
        (v["first_seq"] + i, ts, pl) for i, (ts, pl) in enumerate(readings)
    ]


@pytest.mark.parametrize("v", by_kind("reject"), ids=lambda v: v["name"])
def test_rejects_name_their_reason(v: dict) -> None:
    dgram = bytes.fromhex(v["datagram_hex"])
    key = bytes.fromhex(v["key_hex"])
    with pytest.raises(p.ProtocolError) as err:
        batch = p.parse_data(dgram)
        if not batch.verify(key):
            raise p.ProtocolError("auth_failed")
        for r in batch.readings:
            p.check_payload(r.payload)
    assert err.value.reason == v["reason"]


def test_answers_round_trip() -> None:
    for v in by_kind("ack"):
        key = bytes.fromhex(v["key_hex"])
        assert p.encode_ack(v["device_id"], key, v["ack_seq"]).hex() == v["datagram_hex"]
        assert p.parse_response(bytes.fromhex(v["datagram_hex"]), key) == p.Ack(v["device_id"], v["ack_seq"])
    for v in by_kind("busy"):
        key = bytes.fromhex(v["key_hex"])
        assert p.encode_busy(v["device_id"], key, v["retry_after_ms"]).hex() == v["datagram_hex"]
        assert p.parse_response(bytes.fromhex(v["datagram_hex"]), key) == p.Busy(
            v["device_id"], v["retry_after_ms"]
        )
    (auth,) = by_kind("auth_fail")
    assert p.parse_response(bytes.fromhex(auth["datagram_hex"])) == p.AuthFail()


def test_forged_ack_is_refused() -> None:
    (v,) = by_kind("ack")
    forged = bytearray.fromhex(v["datagram_hex"])
    forged[-33] ^= 0xFF  # change ack_seq, keep the old tag
    with pytest.raises(p.ProtocolError) as err:
        p.parse_response(bytes(forged), bytes.fromhex(v["key_hex"]))
    assert err.value.reason == "auth_failed"


def test_fleet_key_derivation() -> None:
    (v,) = by_kind("derive_key")
    assert p.derive_device_key(bytes.fromhex(v["master_key_hex"]), v["device_id"]).hex() == v["key_hex"]


@pytest.mark.parametrize("v", by_kind("legacy"), ids=lambda v: v["name"])
def test_legacy_formats(v: dict) -> None:
    r = p.parse_legacy(bytes.fromhex(v["datagram_hex"]))
    assert (r.device_id, r.seq, r.timestamp_ms, r.proto) == (
        v["device_id"],
        v["seq"],
        v["timestamp_ms"],
        v["proto"],
    )
    assert json.loads(r.payload) == json.loads(v["payload"])


def test_every_vector_key_is_32_bytes() -> None:
    for v in VECTORS:
        for field in ("key_hex", "master_key_hex"):
            if field in v:
                assert len(bytes.fromhex(v[field])) == 32, f"{v['name']}: {field} must be 32 bytes"


@pytest.mark.parametrize(
    "datagram",
    [
        b'{"device_id": "a\\ud9cf", "sequence": 1, "timestamp": 1, "data": {}}',  # lone surrogate (found by fuzzing)
        b'{"device_id": "dev\\u0000x", "sequence": 1, "timestamp": 1, "data": {}}',  # control character
        b'{"device_id": "' + b"x" * 65 + b'", "sequence": 1, "timestamp": 1, "data": {}}',  # too long
    ],
    ids=["surrogate", "control", "too-long"],
)
def test_legacy_json_bad_device_ids_are_protocol_errors(datagram: bytes) -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse_legacy(datagram)
    assert err.value.reason == "bad_device_id"
