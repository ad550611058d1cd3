"""Virtual devices (the firmware core on the host) against the real gateway and broker.

Four devices buffer readings while the gateway is down (nothing listens on its port: a real outage),
the gateway comes up, they flush under their rate cap, two of them are SIGKILLed in the middle of the
flush and restarted from the same state dir, and the auditor reads the topic: every (device, seq)
is there, nothing is missing, and the rebooted devices resumed where their flash said.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import subprocess
from collections import Counter

import pytest

from simulator.audit.auditor import consume
from tests.fixtures.firmware import VirtualDevice

pytestmark = [pytest.mark.broker, pytest.mark.slow]

READINGS = 300
KEYED = ["--port", "9", "--device-id", "d", "--state-dir", "/tmp/x", "--key-hex", "00" * 32]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outage_flush_and_reboot_mid_flush_lose_nothing(
    kafka_broker, fresh_topic, gateway_factory, virtual_device_bin, virtual_devices, tmp_path
):
    master_key = secrets.token_bytes(32)
    port = free_udp_port()
    run_id = f"fw-{secrets.token_hex(4)}"
    common = (
        "--readings", str(READINGS), "--rate", "200", "--run-id", run_id,
        "--max-batch", "10", "--rate-cap", "10",          # a flush of 300 readings takes ~3 s per device
        "--ack-timeout-ms", "300", "--backoff-base-ms", "100", "--backoff-cap-ms", "800",
        "--status-interval-ms", "50", "--capacity", "512", "--exit-when-drained",
    )  # fmt: skip
    for i in range(4):
        dev = VirtualDevice(
            virtual_device_bin, tmp_path / f"dev-{i}", f"sim-fw-{i}", port, master_key, *common
        )
        virtual_devices.append(dev)
        dev.start()

    # Outage: every reading is generated and buffered while nobody answers; retransmissions back off.
    for dev in virtual_devices:
        s = dev.wait_for(lambda s: s["next"] == READINGS and s["retransmits"] >= 2, 30, "buffered outage")
        assert s["acked"] == 0 and s["stored"] == READINGS

    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, master_key=master_key, udp={"port": port})

    # Reboot in the middle of the flush: SIGKILL once some readings are acked and many are not.
    rebooted = virtual_devices[:2]
    kill_points = {}
    for dev in rebooted:
        s = dev.wait_for(lambda s: 20 <= s["head"] <= READINGS - 100, 60, "a partly acked flush")
        dev.kill()
        kill_points[dev.device_id] = s["head"]
        dev.start()
        boot = dev.wait_for(lambda s: s["event"] in ("boot", "status", "drained"), 10, "boot line")
        first = dev.events()[0]
        assert first["event"] == "boot"
        # The flash kept the unacked readings and the sequence: no restart from 0, no repeat.
        assert first["next"] == READINGS
        assert kill_points[dev.device_id] <= first["head"] < READINGS, (first, kill_points)
        assert boot

    for dev in virtual_devices:
        assert dev.wait_exit(90) == 0
        assert dev.last()["event"] == "drained"
        assert dev.last()["stored"] == 0

    col = asyncio.run(consume(kafka_broker.bootstrap, fresh_topic, run_id, stall_s=30))
    for dev in virtual_devices:
        seqs = col.seqs.get(dev.device_id, [])
        counts = Counter(seqs)
        missing = sorted(set(range(READINGS)) - set(counts))
        unexpected = sorted(set(counts) - set(range(READINGS)))
        assert not missing, f"{dev.device_id}: {len(missing)} readings missing, first {missing[:10]}"
        assert not unexpected, f"{dev.device_id}: unexpected sequences {unexpected[:10]}"
    total = sum(len(v) for v in col.seqs.values())
    duplicates = total - 4 * READINGS
    print(
        f"virtual devices: 4 x {READINGS} readings delivered, {duplicates} duplicate records in Kafka, "
        f"kill points {kill_points}, gateway duplicates counted "
        f"{gw.metric('iot_duplicate_readings_total'):.0f}"
    )
    assert gw.metric("iot_datagrams_total", result="auth_failed") == 0


def test_wrong_key_is_refused_and_nothing_is_deleted(
    kafka_broker, fresh_topic, gateway_factory, virtual_device_bin, virtual_devices, tmp_path
):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic)
    wrong = secrets.token_bytes(32)
    dev = VirtualDevice(
        virtual_device_bin, tmp_path / "dev", "sim-fw-bad", gw.udp_port, wrong,
        "--readings", "5", "--rate", "100", "--status-interval-ms", "50",
    )  # fmt: skip
    virtual_devices.append(dev)
    dev.start()
    s = dev.wait_for(lambda s: s["auth_fail"] >= 1, 20, "an AUTH_FAIL answer")
    assert s["acked"] == 0
    dev.process.terminate()
    assert dev.wait_exit(10) == 0
    assert dev.last()["event"] == "exit" and dev.last()["stored"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-id", "d", "--state-dir", "/tmp/x"], "--port"),
        (["--port", "9", "--device-id", "d", "--state-dir", "/tmp/x", "--key-hex", "abc"], "64 hex digits"),
        (["--port", "70000", "--device-id", "d", "--state-dir", "/tmp/x"], "--port must be an integer"),
        ([*KEYED, "--overflow", "x"], "--overflow"),
        ([*KEYED, "--run-id", "a b"], "--run-id"),
    ],
)
def test_bad_arguments_exit_2_naming_the_option(virtual_device_bin, args, message):
    done = subprocess.run([str(virtual_device_bin), *args], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert message in done.stderr
