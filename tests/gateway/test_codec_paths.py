"""A real gateway on each codec path: the native extension (ibp_native) and the pure-Python one (IBP_NATIVE=0).

The rest of tests/gateway runs on whichever path the environment selects (native when built); run them on the
other with ``IBP_NATIVE=0 pytest tests/gateway``. This file runs both paths in every run.
"""

from __future__ import annotations

import asyncio

import pytest

from ibp import protocol
from tests.gateway.kafka_audit import read_topic

pytestmark = pytest.mark.broker

try:
    import ibp_native
except ImportError:
    ibp_native = None


@pytest.mark.parametrize("level", [None, "1"], ids=["lz4-default", "lz4-level-1"])
@pytest.mark.parametrize("codec", ["native", "python"])
def test_gateway_on_each_codec_path(
    codec, level, kafka_broker, fresh_topic, gateway_factory, udp_client
) -> None:
    """Each path's own batches (gateway/batch.py), at aiokafka's lz4 level and at a chosen one, reach a real
    broker (which checks their CRC and layout) and read back as the readings sent."""
    if codec == "native" and ibp_native is None:
        pytest.skip("ibp_native not built (make setup builds it when cargo is installed)")
    env = {"IBP_NATIVE": "1" if codec == "native" else "0"}
    if level is not None:
        env["GATEWAY_KAFKA_COMPRESSION_LEVEL"] = level
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, env=env)
    status, body = gw.http_get("/healthz")
    assert status == 200 and f"codec={codec}" in body, body
    assert f"codec={codec}" in gw.log_tail(200)
    key = gw.key_for("sim-c")

    def ask(datagram: bytes):
        udp_client.sendto(datagram, ("127.0.0.1", gw.udp_port))
        return protocol.parse_response(udp_client.recv(4096), key)

    readings = [(1_700_000_000_000 + i, b'{"n":%d, "s":"\\u00e9"}' % i) for i in range(5)]
    assert ask(protocol.encode_data("sim-c", key, 10, readings)) == protocol.Ack("sim-c", 14)
    # partial overlap: only 15..17 are new
    more = [(1_700_000_000_100 + i, b'{"m":%d}' % i) for i in range(5)]
    assert ask(protocol.encode_data("sim-c", key, 13, more)) == protocol.Ack("sim-c", 17)
    # refused: a payload that is not a JSON object, a bad tag; nothing produced, counted by reason
    bad = protocol.encode_data("sim-c", key, 18, [(1, b'{"a": NaN}')])
    udp_client.sendto(bad, ("127.0.0.1", gw.udp_port))
    assert gw.wait_metric("iot_invalid_datagrams_total", 1, reason="malformed_json") == 1
    forged = protocol.encode_data("sim-c", b"\x00" * 32, 18, [(1, b"{}")])
    assert isinstance(ask(forged), protocol.AuthFail)
    got = asyncio.run(read_topic(kafka_broker.bootstrap, fresh_topic))
    assert sorted(r["seq"] for r in got) == list(range(10, 18))
    by_seq = {r["seq"]: r for r in got}
    assert by_seq[10]["payload"] == {"n": 0, "s": "é"} and by_seq[10]["device_ts_ms"] == 1_700_000_000_000
    assert by_seq[15]["payload"] == {"m": 2} and by_seq[15]["device_ts_ms"] == 1_700_000_000_102
    assert {r["proto"] for r in got} == {"ibp1"} and {r["_key"] for r in got} == {"sim-c"}
