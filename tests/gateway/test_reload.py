"""Key registry reload without a restart (issue 13 A): real gateway, real UDP, real Kafka.

SIGHUP to the supervisor: new devices and fleets admitted, removed devices refused, readings in flight at
the reload still committed and acked, a bad file refused with an error naming the problem while the old
registry stays in use (also for a worker restarted afterwards).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
import yaml

from harness.gateway import wait_ready
from ibp import protocol
from tests.gateway.kafka_audit import read_topic

pytestmark = pytest.mark.broker

NO_AUTH_FAIL_LIMIT = {"auth_fail_per_s": 100000.0}  # every test socket is 127.0.0.1: one rate limit


def data(device_id: str, key: bytes, first_seq: int, n: int) -> bytes:
    readings = [(1_700_000_000_000 + i, b'{"n":%d}' % (first_seq + i)) for i in range(n)]
    return protocol.encode_data(device_id, key, first_seq, readings)


@contextmanager
def client() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(20.0)
    try:
        yield s
    finally:
        s.close()


def ask(gw, datagram: bytes, key: bytes | None, sock: socket.socket | None = None):
    if sock is None:
        with client() as s:
            return ask(gw, datagram, key, s)
    sock.sendto(datagram, ("127.0.0.1", gw.udp_port))
    return protocol.parse_response(sock.recv(4096), key)


def write_registry(path, devices: dict[str, bytes], fleets: dict[str, bytes]) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "devices": {k: v.hex() for k, v in devices.items()},
                "fleets": [{"prefix": p, "master_key": m.hex()} for p, m in fleets.items()],
            }
        )
    )


def seqs(kafka_broker, topic: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in asyncio.run(read_topic(kafka_broker.bootstrap, topic)):
        out.setdefault(r["device_id"], []).append(r["seq"])
    return {k: sorted(v) for k, v in out.items()}


def wait_until(predicate, gw, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{gw.log_tail()}"
        time.sleep(0.05)


def wait_for_log(gw, text: str, count: int) -> None:
    wait_until(lambda: gw.log_path.read_text().count(text) >= count, gw, f"{count} x {text!r} in the log")


@contextmanager
def broker_paused(kafka_broker) -> Iterator[None]:
    """SIGSTOP the broker: produce requests stay unanswered, so readings stay in flight until resumed."""
    pid = kafka_broker.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_sighup_admits_new_refuses_removed_and_keeps_in_flight(kafka_broker, fresh_topic, gateway_factory):
    with ExitStack() as stack:
        _admit_refuse_keep(kafka_broker, fresh_topic, gateway_factory, stack)


def _admit_refuse_keep(kafka_broker, fresh_topic, gateway_factory, stack: ExitStack) -> None:
    keep, gone, new = (secrets.token_bytes(32) for _ in range(3))
    gw = gateway_factory.start(
        kafka_broker.bootstrap,
        fresh_topic,
        udp={"workers": 2},
        limits=NO_AUTH_FAIL_LIMIT,
        device_keys={"esp32-keep": keep, "esp32-gone": gone},
    )
    lab_master = secrets.token_bytes(32)
    lab_ids = [f"lab-{i}" for i in range(8)]
    # like a real device, esp32-keep keeps its source address: one worker holds its state throughout
    keep_sock = stack.enter_context(client())
    assert ask(gw, data("esp32-keep", keep, 1, 3), keep, keep_sock) == protocol.Ack("esp32-keep", 3)
    assert ask(gw, data("esp32-new", new, 1, 2), None) == protocol.AuthFail()
    assert ask(gw, data("lab-0", protocol.derive_device_key(lab_master, "lab-0"), 1, 1), None) == (
        protocol.AuthFail()
    )

    with client() as gone_sock:
        with broker_paused(kafka_broker):
            gone_sock.sendto(data("esp32-gone", gone, 1, 5), ("127.0.0.1", gw.udp_port))
            # in flight: Kafka does not answer (exactly 5 once both workers published their gauge)
            wait_until(lambda: gw.metric("iot_inflight_readings") == 5, gw, "5 readings in flight")
            write_registry(
                gw.registry_path,
                {"esp32-keep": keep, "esp32-new": new},
                {"sim-": gw.master_key, "lab-": lab_master},
            )
            gw.reload()
            assert gw.wait_metric("iot_registry_reloads_total", 2, result="ok") == 2  # both workers
            assert gw.metric("iot_inflight_readings") == 5  # the reload happened while they were in flight
        # in flight at the reload: committed and acked under the key it arrived with
        assert protocol.parse_response(gone_sock.recv(4096), gone) == protocol.Ack("esp32-gone", 5)
        # removed: refused from now on, nothing more produced
        assert ask(gw, data("esp32-gone", gone, 6, 1), None, gone_sock) == protocol.AuthFail()

    assert ask(gw, data("esp32-new", new, 1, 2), new) == protocol.Ack("esp32-new", 2)
    # a device kept keeps its state: the retransmission is a duplicate, the next readings are new
    assert ask(gw, data("esp32-keep", keep, 1, 3), keep, keep_sock) == protocol.Ack("esp32-keep", 3)
    assert ask(gw, data("esp32-keep", keep, 4, 3), keep, keep_sock) == protocol.Ack("esp32-keep", 6)
    for device_id in lab_ids:  # eight source sockets: spread over both workers by SO_REUSEPORT
        key = protocol.derive_device_key(lab_master, device_id)
        assert ask(gw, data(device_id, key, 10, 2), key) == protocol.Ack(device_id, 11)

    got = seqs(kafka_broker, fresh_topic)
    assert got == {
        "esp32-keep": list(range(1, 7)),
        "esp32-gone": list(range(1, 6)),
        "esp32-new": [1, 2],
        **{d: [10, 11] for d in lab_ids},
    }
    assert gw.running and "event=worker_died" not in gw.log_path.read_text()


def test_bad_registry_on_reload_keeps_the_old_one(kafka_broker, fresh_topic, gateway_factory):
    new = secrets.token_bytes(32)
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, limits=NO_AUTH_FAIL_LIMIT)
    write_registry(gw.registry_path, {"esp32-new": new}, {"sim-": gw.master_key})
    gw.reload()
    assert gw.wait_metric("iot_registry_reloads_total", 1, result="ok") == 1
    assert ask(gw, data("esp32-new", new, 1, 1), new) == protocol.Ack("esp32-new", 1)

    good_text = gw.registry_path.read_text()
    gw.registry_path.write_text(good_text.replace(new.hex(), "not-hex-at-all"))
    gw.reload()
    assert gw.wait_metric("iot_registry_reload_rejected_total", 1) == 1
    failed = [line for line in gw.log_path.read_text().splitlines() if "event=registry_reload_failed" in line]
    assert len(failed) == 1
    assert "level=ERROR" in failed[0]
    assert f"{gw.registry_path}: devices.esp32-new: expected 64 hex digits" in failed[0]
    assert gw.metric("iot_registry_reloads_total", result="ok") == 1  # the workers were not asked

    # the old registry is still in use, also by a worker restarted while the file on disk is bad
    sim_key = gw.key_for("sim-x")
    assert ask(gw, data("esp32-new", new, 2, 1), new) == protocol.Ack("esp32-new", 2)
    (worker_pid,) = [
        int(line.split("pid=")[1].split()[0])
        for line in gw.log_path.read_text().splitlines()
        if "event=worker_started" in line
    ]
    os.kill(worker_pid, signal.SIGKILL)
    wait_for_log(gw, "event=worker_started", 2)  # the supervisor restarted it
    wait_ready(gw)
    assert ask(gw, data("esp32-new", new, 3, 1), new) == protocol.Ack("esp32-new", 3)
    assert ask(gw, data("sim-x", sim_key, 1, 1), sim_key) == protocol.Ack("sim-x", 1)

    unreadable = gw.registry_path.with_name("missing.yml")
    gw.registry_path.rename(unreadable)
    gw.reload()
    assert gw.wait_metric("iot_registry_reload_rejected_total", 2) == 2
    assert f"{gw.registry_path}: cannot read: No such file or directory" in gw.log_tail()
    assert gw.running
