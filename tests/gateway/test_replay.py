"""Replay protection across a restart (issue 13 C): real gateway, real UDP, real Kafka.

Datagrams are captured as they go out to the gateway, acked, then the gateway is stopped (SIGTERM) or
killed (SIGKILL of every process), a new one starts on the same state dir, every captured datagram is
replayed from new source addresses (so SO_REUSEPORT may hand a device to the other worker) and the topic
must hold no new record. A gateway without the state dir, as before, produces a replay again: the control
that shows the replay would be caught if the marks were lost.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections import Counter

import pytest

from ibp import protocol
from tests.gateway.kafka_audit import read_topic

pytestmark = pytest.mark.broker

DEVICES = 20
DATAGRAMS = 3
BATCH = 10


def records(kafka_broker, topic: str) -> Counter:
    return Counter((r["device_id"], r["seq"]) for r in asyncio.run(read_topic(kafka_broker.bootstrap, topic)))


def exchange(sock: socket.socket, port: int, datagram: bytes, key: bytes):
    sock.sendto(datagram, ("127.0.0.1", port))
    return protocol.parse_response(sock.recv(4096), key)


def capture_burst(gw) -> list[tuple[str, bytes, int]]:
    """Each device sends DATAGRAMS batches from its own socket, stop-and-wait; returns what went out."""
    captured: list[tuple[str, bytes, int]] = []
    for d in range(DEVICES):
        device_id = f"sim-replay-{d:03d}"
        key = gw.key_for(device_id)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(20.0)
            for b in range(DATAGRAMS):
                first = 1000 + b * BATCH
                readings = [(1_700_000_000_000 + i, b'{"n":%d}' % (first + i)) for i in range(BATCH)]
                datagram = protocol.encode_data(device_id, key, first, readings)
                last = first + BATCH - 1
                assert exchange(sock, gw.udp_port, datagram, key) == protocol.Ack(device_id, last)
                captured.append((device_id, datagram, last))
    return captured


def replay(gw, captured: list[tuple[str, bytes, int]]) -> list:
    answers = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # one new address for the lot
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(20.0)
        for device_id, datagram, _ in captured:
            answers.append(exchange(sock, gw.udp_port, datagram, gw.key_for(device_id)))
    return answers


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_replayed_datagrams_after_a_restart_produce_nothing(
    kafka_broker, fresh_topic, gateway_factory, stop: str
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"workers": 2})
    state = gw.state_dir
    captured = capture_burst(gw)
    before = records(kafka_broker, fresh_topic)
    assert sum(before.values()) == len(before) == DEVICES * DATAGRAMS * BATCH  # once each

    if stop == "sigterm":
        assert gw.stop(signal.SIGTERM) == 0
    else:
        gw.kill()  # SIGKILL to supervisor and workers: no drain, no snapshot, only what was written

    gw2 = gateway_factory.start(
        kafka_broker.bootstrap,
        fresh_topic,
        udp={"workers": 2},
        master_key=gw.master_key,
        state={"dir": str(state)},
    )
    assert f"devices={DEVICES}" in " ".join(
        line for line in gw2.log_path.read_text().splitlines() if "event=state_loaded" in line
    )
    answers = replay(gw2, captured)
    # every replay is answered at once with the device's committed mark, as a retransmission would be
    finals = {device_id: last for device_id, _, last in captured}
    assert answers == [protocol.Ack(device_id, finals[device_id]) for device_id, _, _ in captured]
    assert records(kafka_broker, fresh_topic) == before  # no new record at all
    assert gw2.wait_metric("iot_duplicate_readings_total", len(captured) * BATCH) == len(captured) * BATCH
    assert gw2.metric("iot_messages_produced_total") == 0

    # the restored gateway still takes what is new
    device_id = captured[0][0]
    key = gw2.key_for(device_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(20.0)
        new = protocol.encode_data(device_id, key, 1030, [(0, b'{"n":1030}')])
        assert exchange(sock, gw2.udp_port, new, key) == protocol.Ack(device_id, 1030)
    after = records(kafka_broker, fresh_topic)
    assert after - before == Counter({(device_id, 1030): 1})


def test_without_a_state_dir_a_replay_after_restart_is_produced_again(
    kafka_broker, fresh_topic, gateway_factory
):
    """The behaviour state.dir removes, kept for `state.dir: null`: proves the replay above is real."""
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, state={"dir": None})
    device_id = "sim-nostate"
    key = gw.key_for(device_id)
    datagram = protocol.encode_data(device_id, key, 7, [(0, b'{"n":7}')])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(20.0)
        assert exchange(sock, gw.udp_port, datagram, key) == protocol.Ack(device_id, 7)
        assert gw.stop(signal.SIGTERM) == 0
        gw2 = gateway_factory.start(
            kafka_broker.bootstrap, fresh_topic, master_key=gw.master_key, state={"dir": None}
        )
        assert exchange(sock, gw2.udp_port, datagram, key) == protocol.Ack(device_id, 7)
    assert records(kafka_broker, fresh_topic) == Counter({(device_id, 7): 2})
