"""The gateway against the real broker: ACK after commit, duplicates, AUTH_FAIL, BUSY, legacy, HTTP, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import time

import pytest

from ibp import protocol
from tests.gateway.kafka_audit import read_topic

pytestmark = pytest.mark.broker


def data(
    gw, device_id: str, first_seq: int, n: int, payload: bytes | None = None, key: bytes | None = None
) -> bytes:
    readings = [(1_700_000_000_000 + i, payload or b'{"n":%d}' % (first_seq + i)) for i in range(n)]
    return protocol.encode_data(device_id, key or gw.key_for(device_id), first_seq, readings)


def ask(sock: socket.socket, gw, datagram: bytes, key: bytes | None = None):
    sock.sendto(datagram, ("127.0.0.1", gw.udp_port))
    return protocol.parse_response(sock.recv(4096), key)


def records(kafka_broker, topic: str) -> list[dict]:
    return asyncio.run(read_topic(kafka_broker.bootstrap, topic))


def test_ack_only_after_kafka_and_duplicates_reacked(kafka_broker, fresh_topic, gateway_factory, udp_client):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    key = gw.key_for("sim-a")
    assert ask(udp_client, gw, data(gw, "sim-a", 100, 10), key) == protocol.Ack("sim-a", 109)
    got = records(kafka_broker, fresh_topic)
    assert sorted(r["seq"] for r in got) == list(range(100, 110))
    first = next(r for r in got if r["seq"] == 100)
    assert first["device_id"] == "sim-a" and first["_key"] == "sim-a" and first["proto"] == "ibp1"
    assert first["device_ts_ms"] == 1_700_000_000_000 and first["payload"] == {"n": 100}
    assert abs(first["gateway_ts_ms"] - time.time() * 1000) < 60_000
    # a retransmission of committed readings: ACK hwm again at once, nothing produced twice
    assert ask(udp_client, gw, data(gw, "sim-a", 100, 10), key) == protocol.Ack("sim-a", 109)
    # partial overlap: only 110..114 are new
    assert ask(udp_client, gw, data(gw, "sim-a", 105, 10), key) == protocol.Ack("sim-a", 114)
    assert sorted(r["seq"] for r in records(kafka_broker, fresh_topic)) == list(range(100, 115))
    assert gw.wait_metric("iot_duplicate_readings_total", 15) == 15
    assert gw.wait_metric("iot_datagrams_total", 1, result="duplicate") == 1
    assert gw.wait_metric("iot_datagrams_total", 2, result="ok") == 2
    assert gw.wait_metric("iot_messages_produced_total", 15) == 15
    assert gw.wait_metric("iot_acks_sent_total", 3) == 3
    # a gap (the device dropped readings on overflow) is accepted and counted
    assert ask(udp_client, gw, data(gw, "sim-a", 200, 1), key) == protocol.Ack("sim-a", 200)
    assert gw.wait_metric("iot_sequence_gaps_total", 1) == 1


def test_auth_failures_leak_nothing_and_are_rate_limited(
    kafka_broker, fresh_topic, gateway_factory, udp_client
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, limits={"auth_fail_per_s": 1.0})
    wrong_key = data(gw, "sim-b", 1, 1, key=b"\x01" * 32)
    unknown = protocol.encode_data("other-device", b"\x02" * 32, 1, [(0, b"{}")])
    assert ask(udp_client, gw, wrong_key) == protocol.AuthFail()
    udp_client.sendto(unknown, ("127.0.0.1", gw.udp_port))
    udp_client.sendto(wrong_key, ("127.0.0.1", gw.udp_port))
    udp_client.settimeout(0.5)
    with pytest.raises(TimeoutError):
        udp_client.recv(4096)  # both withheld: at most one AUTH_FAIL per second per address
    time.sleep(1.0)
    udp_client.settimeout(10)
    raw = (udp_client.sendto(unknown, ("127.0.0.1", gw.udp_port)), udp_client.recv(4096))[1]
    assert raw == protocol.AUTH_FAIL_DATAGRAM  # the same 4 bytes for unknown device and bad tag
    assert gw.wait_metric("iot_datagrams_total", 4, result="auth_failed") == 4
    assert gw.wait_metric("iot_auth_fail_suppressed_total", 2) == 2
    assert records(kafka_broker, fresh_topic) == []


def test_legacy_formats_land_in_kafka(kafka_broker, fresh_topic, gateway_factory, udp_client):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    udp_client.sendto(
        protocol.encode_legacy_binary("esp32-old", 7, {"temp": 21.5}), ("127.0.0.1", gw.udp_port)
    )
    udp_client.sendto(
        protocol.encode_legacy_json("esp32-json", 8, 1_700_000_000.25, {"hum": 40}),
        ("127.0.0.1", gw.udp_port),
    )
    assert gw.wait_metric("iot_messages_produced_total", 2) == 2
    got = sorted(records(kafka_broker, fresh_topic), key=lambda r: r["seq"])
    assert [(r["device_id"], r["seq"], r["proto"], r["payload"]) for r in got] == [
        ("esp32-old", 7, "legacy-bin", {"temp": 21.5}),
        ("esp32-json", 8, "legacy-json", {"hum": 40}),
    ]
    assert got[1]["device_ts_ms"] == 1_700_000_000_250
    assert gw.wait_metric("iot_datagrams_total", 2, result="legacy") == 2
    # unauthenticated input: said at start, where operators look
    (warning,) = [
        line for line in gw.log_path.read_text().splitlines() if "event=legacy_input_enabled" in line
    ]
    assert "level=WARNING" in warning and "formats=legacy_binary,legacy_json" in warning


def test_legacy_can_be_turned_off(kafka_broker, fresh_topic, gateway_factory, udp_client):
    gw = gateway_factory.start(
        kafka_broker.bootstrap, fresh_topic, devices={"legacy_binary": False, "legacy_json": False}
    )
    udp_client.sendto(protocol.encode_legacy_binary("esp32-old", 7, {"t": 1}), ("127.0.0.1", gw.udp_port))
    udp_client.sendto(protocol.encode_legacy_json("esp32-json", 8, 1.0, {"t": 1}), ("127.0.0.1", gw.udp_port))
    assert gw.wait_metric("iot_invalid_datagrams_total", 2, reason="legacy_disabled") == 2
    assert records(kafka_broker, fresh_topic) == []
    assert "event=legacy_input_enabled" not in gw.log_path.read_text()


def test_bad_input_is_counted_by_reason_and_never_produced(
    kafka_broker, fresh_topic, gateway_factory, udp_client
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"max_datagram_bytes": 1500})
    key = gw.key_for("sim-c")
    good = data(gw, "sim-c", 100_000, 2)
    assert ask(udp_client, gw, good, key) == protocol.Ack("sim-c", 100_001)

    def signed(body: bytes) -> bytes:
        return body + protocol._tag(key, body)

    header = b"IB\x01\x01"
    idpart = bytes([5]) + b"sim-c"
    cases = {
        "oversized": data(gw, "sim-c", 100_002, 40, payload=b'{"pad":"' + b"x" * 60 + b'"}'),
        "bad_magic": b"\x00\x01hello",
        "bad_version": b"IB\x02\x01" + good[4:],
        "bad_type": b"IB\x01\x81" + good[4:],
        "truncated": good[:20],
        "bad_device_id": header + bytes([2]) + b"\xff\xfe" + struct.pack(">IB", 1, 1) + b"\x00" * 42,
        "invalid": signed(header + idpart + struct.pack(">IB", 1, 0)),
        "malformed_json": signed(
            header + idpart + struct.pack(">IB", 100_002, 1) + struct.pack(">QH", 0, 5) + b"[1,2]"
        ),
        "seq_regression": data(gw, "sim-c", 1, 1),
    }
    for datagram in cases.values():
        udp_client.sendto(datagram, ("127.0.0.1", gw.udp_port))
    udp_client.sendto(b'{"device_id": "x", "sequence": "nope"}', ("127.0.0.1", gw.udp_port))
    udp_client.sendto(b"\xaa\x55short", ("127.0.0.1", gw.udp_port))
    gw.wait_metric("iot_datagrams_total", len(cases) + 2, result="invalid")
    for reason in cases:
        assert gw.metric("iot_invalid_datagrams_total", reason=reason) >= 1, reason
    assert gw.wait_metric("iot_datagrams_total", len(cases) + 2, result="invalid") == len(cases) + 2
    udp_client.settimeout(0.5)
    with pytest.raises(TimeoutError):
        udp_client.recv(4096)  # no answer to garbage, not even to a regression
    # the worker survived: valid traffic still flows; nothing of the garbage reached Kafka
    udp_client.settimeout(10)
    assert ask(udp_client, gw, data(gw, "sim-c", 100_002, 1), key) == protocol.Ack("sim-c", 100_002)
    assert sorted(r["seq"] for r in records(kafka_broker, fresh_topic)) == [100_000, 100_001, 100_002]


def test_busy_when_in_flight_limit_is_reached(kafka_broker, fresh_topic, gateway_factory, udp_client):
    gw = gateway_factory.start(
        kafka_broker.bootstrap,
        fresh_topic,
        udp={"max_datagram_bytes": 65000},
        limits={"max_inflight_readings": 255, "busy_retry_after_ms": 321},
        kafka={"linger_ms": 1500},
    )
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.settimeout(10)
    try:
        other.sendto(data(gw, "sim-d", 1, 200), ("127.0.0.1", gw.udp_port))  # in flight for ~1.5 s
        time.sleep(0.2)
        key_e = gw.key_for("sim-e")
        assert ask(udp_client, gw, data(gw, "sim-e", 1, 100), key_e) == protocol.Busy("sim-e", 321)
        assert protocol.parse_response(other.recv(4096)) == protocol.Ack("sim-d", 200)
        assert ask(udp_client, gw, data(gw, "sim-e", 1, 100), key_e) == protocol.Ack("sim-e", 100)
    finally:
        other.close()
    assert gw.wait_metric("iot_busy_sent_total", 1) == 1
    assert gw.wait_metric("iot_datagrams_total", 1, result="busy") == 1
    assert len(records(kafka_broker, fresh_topic)) == 300


CONTRACT_METRICS = [
    "iot_messages_received_total",
    "iot_messages_produced_total",
    "iot_produce_errors_total",
    "iot_active_devices",
    "iot_produce_latency_ms_bucket",
    "iot_datagrams_total",
    "iot_invalid_datagrams_total",
    "iot_acks_sent_total",
    "iot_busy_sent_total",
    "iot_inflight_readings",
    "iot_batch_readings_bucket",
    "iot_ack_latency_ms_bucket",
    "iot_duplicate_readings_total",
    "iot_sequence_gaps_total",
    "iot_udp_receive_buffer_errors_total",
    "iot_gateway_ready",
]


def test_http_endpoints_and_metrics_aggregated_over_workers(kafka_broker, fresh_topic, gateway_factory):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"workers": 2})
    assert gw.http_get("/healthz")[0] == 200
    assert gw.http_get("/readyz") == (200, "ready workers=2/2\n")
    assert gw.http_get("/nope")[0] == 404
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    try:
        for i, s in enumerate(socks):
            s.settimeout(10)
            device_id = f"sim-agg-{i}"
            s.sendto(data(gw, device_id, 1, 3), ("127.0.0.1", gw.udp_port))
        for s in socks:
            assert isinstance(protocol.parse_response(s.recv(4096)), protocol.Ack)
    finally:
        for s in socks:
            s.close()
    text = gw.metrics_text()
    for name in CONTRACT_METRICS:
        assert f"\n{name}" in text, name
    assert gw.wait_metric("iot_messages_produced_total", 48) == 48
    assert gw.wait_metric("iot_acks_sent_total", 16) == 16
    assert gw.wait_metric("iot_gateway_ready", 1) == 1
    pids = {line.split()[-1] for line in gw.log_tail(50).splitlines() if "event=worker_started" in line}
    assert len(pids) == 2
    # both workers served devices (SO_REUSEPORT spread 16 source ports over 2 sockets)
    logs = json.dumps(gw.log_tail(50))
    assert "worker-0" in logs and "worker-1" in logs
    gw.wait_metric("iot_active_devices", 16, timeout=5)
    assert gw.wait_metric("iot_active_devices", 16) == 16


def test_sigterm_flushes_and_acks_what_kafka_committed(
    kafka_broker, fresh_topic, gateway_factory, udp_client
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, kafka={"linger_ms": 3000})
    key = gw.key_for("sim-f")
    udp_client.sendto(data(gw, "sim-f", 1, 50), ("127.0.0.1", gw.udp_port))
    time.sleep(0.3)  # the batch is lingering, not yet sent
    gw.process.send_signal(signal.SIGTERM)
    assert protocol.parse_response(udp_client.recv(4096), key) == protocol.Ack("sim-f", 50)
    assert gw.process.wait(30) == 0
    assert sorted(r["seq"] for r in records(kafka_broker, fresh_topic)) == list(range(1, 51))
    assert "event=stopped acked_during_drain=50 unacked=0" in gw.log_tail()


def test_kernel_receive_buffer_drops_are_counted(kafka_broker, fresh_topic, gateway_factory):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"rcvbuf_bytes": 4096})
    worker_pid = int(
        next(line for line in gw.log_tail().splitlines() if "event=worker_started" in line).split("pid=")[1]
    )
    os.kill(worker_pid, signal.SIGSTOP)  # the worker stops reading: the socket's small buffer overflows
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(500):
                s.sendto(b"\x00junk-%d" % i, ("127.0.0.1", gw.udp_port))
        assert (
            gw.metric("iot_udp_receive_buffer_errors_total") > 0
        )  # read by the supervisor from /proc/net/udp
    finally:
        os.kill(worker_pid, signal.SIGCONT)
    drops = gw.metric("iot_udp_receive_buffer_errors_total")
    received = gw.wait_metric("iot_invalid_datagrams_total", 500 - drops, reason="bad_magic")
    assert received + drops == 500  # every datagram is either handled or counted as a kernel drop


def test_a_crashed_worker_is_restarted_on_the_same_socket(
    kafka_broker, fresh_topic, gateway_factory, udp_client
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    worker_pid = int(
        next(line for line in gw.log_tail().splitlines() if "event=worker_started" in line).split("pid=")[1]
    )
    os.kill(worker_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # the supervisor logs the death, then a new worker gets ready on the same socket
        _, died, after = gw.log_tail().partition("event=worker_died")
        if died and "event=worker_ready" in after:
            break
        assert time.monotonic() < deadline, gw.log_tail()
        time.sleep(0.1)
    key = gw.key_for("sim-restart")
    assert ask(udp_client, gw, data(gw, "sim-restart", 1, 3), key) == protocol.Ack("sim-restart", 3)
    assert gw.http_get("/readyz")[0] == 200
