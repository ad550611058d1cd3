"""Hypothesis throws >= 100,000 random and mutated datagrams at a running gateway (2 workers).

Every datagram sent is one the reference codec (ibp/protocol.py) rejects, so none may become a Kafka
record; afterwards valid traffic must still flow, no worker may have died, and every datagram must be
accounted for (counted as invalid or auth_failed, or dropped by the kernel and counted there).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.loadgen import Fleet, fleet_keys
from ibp import protocol
from tests.gateway.kafka_audit import audit, read_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]

MAX_DATAGRAM = 2048
MUTANTS_PER_SEED = 50
EXAMPLES = 2100  # x ~50 datagrams each: > 100,000


def reference_accepts(datagram: bytes, keys: dict[str, bytes]) -> bool:
    """Would a correct gateway produce this datagram? (The oracle: the lead's reference codec.)"""
    if len(datagram) > MAX_DATAGRAM:
        return False
    kind = protocol.classify(datagram)
    try:
        if kind == "ibp1":
            batch = protocol.parse_data(datagram)
            key = keys.get(batch.device_id)
            if key is None or not batch.verify(key):
                return False
            for reading in batch.readings:
                protocol.check_payload(reading.payload)
            return True
        if kind in ("legacy-bin", "legacy-json"):
            protocol.parse_legacy(datagram)
            return True
    except (protocol.ProtocolError, RecursionError):
        return False
    return False


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def seeds(draw, keys: dict[str, bytes]) -> bytes:
    """A starting datagram: valid (to be mutated), structurally valid but unauthenticated, or junk."""
    device_id = draw(st.sampled_from(sorted(keys)))
    kind = draw(st.integers(0, 7))
    readings = [
        (
            draw(st.integers(0, 2**64 - 1)),
            json.dumps(draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))).encode(),
        )
        for _ in range(draw(st.integers(1, 6)))
    ]
    first = draw(st.integers(0, 2**32 - 10))
    if kind == 0:  # valid, signed with the right key: only its mutants are sent
        return protocol.encode_data(device_id, keys[device_id], first, readings)
    if kind == 1:  # wrong key or unknown device
        other = draw(st.sampled_from(["sim-fuzz-unknown", device_id]))
        return protocol.encode_data(other, draw(st.binary(min_size=32, max_size=32)), first, readings)
    if kind == 2:  # signed, but a payload that is not a JSON object
        bad = draw(st.sampled_from([b"[1]", b"nul", b"\xff\xfe{}", b"NaN", b'{"a":NaN}', b"{", b"1", b'"s"']))
        return protocol.encode_data(device_id, keys[device_id], first, [(0, bad)])
    if kind == 3:  # non-UTF-8 or control-character device id, correctly signed over whatever it is
        raw = draw(st.sampled_from([b"\xff\xfe", b"sim-\x00x", b"sim-\x1b", b"\xc3"]))
        body = (
            b"IB\x01\x01"
            + bytes([len(raw)])
            + raw
            + struct.pack(">IB", 1, 1)
            + struct.pack(">QH", 0, 2)
            + b"{}"
        )
        return body + draw(st.binary(min_size=32, max_size=32))
    if kind == 4:  # legacy binary with junk
        return protocol.LEGACY_MAGIC + draw(st.binary(max_size=60))
    if kind == 5:  # legacy JSON with wrong types
        obj = draw(
            st.dictionaries(st.sampled_from(["device_id", "sequence", "timestamp", "data", "x"]), json_values)
        )
        return json.dumps(obj).encode()
    if kind == 6:  # IBP/1 header, then noise
        return b"IB" + draw(st.binary(min_size=0, max_size=100))
    return draw(st.binary(max_size=200))


def mutate(datagram: bytes, rnd: random.Random, pool: list[bytes]) -> bytes:
    d = bytearray(datagram)
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(8)
        i = rnd.randrange(len(d) + 1)
        if op == 0 and d:
            d[min(i, len(d) - 1)] ^= 1 << rnd.randrange(8)
        elif op == 1 and d:
            d[min(i, len(d) - 1)] = rnd.randrange(256)
        elif op == 2:
            del d[i:]
        elif op == 3:
            del d[i : i + rnd.randint(1, 16)]
        elif op == 4:
            d[i:i] = rnd.randbytes(rnd.randint(1, 16))
        elif op == 5 and pool:
            other = rnd.choice(pool)
            d[i:] = other[rnd.randrange(len(other) + 1) :]
        elif op == 6 and len(d) > 4:
            d[2:4] = bytes([rnd.choice([0, 1, 2, 255]), rnd.choice([0x01, 0x81, 0x82, 0x83, 0x00])])
        else:
            d += rnd.randbytes(rnd.randint(1, 64))
    return bytes(d)


def test_fuzzed_datagrams_never_reach_kafka_and_valid_traffic_still_flows(
    kafka_broker, fresh_topic, gateway_factory
):
    gw = gateway_factory.start(
        kafka_broker.bootstrap,
        fresh_topic,
        udp={"workers": 2, "max_datagram_bytes": MAX_DATAGRAM},
        limits={"auth_fail_per_s": 5.0},
    )
    keys = {f"sim-fuzz-{i}": gw.key_for(f"sim-fuzz-{i}") for i in range(8)}
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
    target = ("127.0.0.1", gw.udp_port)
    sent = [0]
    pool: list[bytes] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(seed=seeds(keys), mutation_seed=st.integers(0, 2**32 - 1))
    def blast(seed: bytes, mutation_seed: int) -> None:
        rnd = random.Random(mutation_seed)  # mutations derive from one drawn number: cheap and replayable
        pool.append(seed)
        if len(pool) > 64:
            pool.pop(0)
        batch = [seed] + [mutate(seed, rnd, pool) for _ in range(MUTANTS_PER_SEED)]
        sock = socks[sent[0] % len(socks)]
        for datagram in batch:
            if not datagram or reference_accepts(datagram, keys):
                continue
            sock.sendto(datagram[:65000], target)
            sent[0] += 1
        time.sleep(0.001)  # keep the kernel's receive queue from overflowing on this shared machine

    started = time.monotonic()
    try:
        blast()
    finally:
        for s in socks:
            s.close()
    elapsed = time.monotonic() - started
    assert sent[0] >= 100_000

    def accounted() -> float:
        return (
            gw.metric("iot_datagrams_total", result="invalid")
            + gw.metric("iot_datagrams_total", result="auth_failed")
            + gw.metric("iot_udp_receive_buffer_errors_total")
        )

    deadline = time.monotonic() + 30
    while accounted() < sent[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert accounted() == sent[0]
    assert gw.metric("iot_datagrams_total", result="ok") == 0
    assert gw.metric("iot_datagrams_total", result="legacy") == 0
    for reason in ("bad_magic", "truncated", "bad_device_id", "malformed_json", "bad_version", "bad_type"):
        assert gw.metric("iot_invalid_datagrams_total", reason=reason) > 0, reason
    # AUTH_FAIL answers stay rate limited per source address (5/s here)
    assert gw.metric("iot_auth_fail_sent_total") <= 5 * (elapsed + 1) + 5
    assert "worker_died" not in gw.log_tail(500) and "handler_error" not in gw.log_tail(500)

    # valid traffic still flows, and Kafka holds exactly it: nothing came from the garbage
    run = uuid.uuid4().hex[:8]
    fleet_ids = fleet_keys(gw.master_key, 20, run)
    result = asyncio.run(Fleet("127.0.0.1", gw.udp_port, fleet_ids, readings_per_device=50, batch=10).run(60))
    assert result.fully_acked == 20
    records = asyncio.run(read_topic(kafka_broker.bootstrap, fresh_topic))
    report = audit(records, {d: range(1, 51) for d in fleet_ids})
    assert report.exactly_once and report.delivered == 1000
