"""Verify the gateway role on a real systemd host against the real broker of the same scenario.

Runs on the control node (Molecule's testinfra verifier): host checks go over SSH, while the
end-to-end check sends a signed IBP/1 datagram over UDP from this process to the gateway host and
reads the resulting record back from Kafka on the broker host.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import time

import testinfra.utils.ansible_runner
import yaml
from aiokafka import AIOKafkaConsumer

from gateway.protocol import Ack, AuthFail, derive_device_key, encode_data, parse_response

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("gateways")

SERVICE = "iot-gateway"
CONFIG = "/etc/iot-gateway/gateway.yml"
REGISTRY = "/etc/iot-gateway/devices.yml"


def _config(host) -> dict:
    return yaml.safe_load(host.file(CONFIG).content_string)


def _registry(host) -> dict:
    return yaml.safe_load(host.file(REGISTRY).content_string)


def _address(host) -> str:
    return host.ansible.get_variables().get("ansible_host") or host.backend.get_hostname()


def _exchange(address: str, port: int, datagram: bytes, attempts: int = 5, timeout_s: float = 3.0) -> bytes:
    """Send one datagram and return the first answer, retransmitting like a device would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        for _ in range(attempts):
            sock.sendto(datagram, (address, port))
            try:
                answer, _ = sock.recvfrom(2048)
                return answer
            except TimeoutError:
                continue
    raise AssertionError(f"no answer from the gateway at {address}:{port} after {attempts} attempts")


async def _find_record(bootstrap: str, topic: str, run_id: str, timeout_s: float = 60.0) -> dict | None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    value = json.loads(record.value)
                    if value.get("payload", {}).get("run") == run_id:
                        return {"key": record.key.decode(), **value}
        return None
    finally:
        await consumer.stop()


def test_service_running_and_enabled(host):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled


def test_runs_as_dedicated_user_with_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {SERVICE} -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp "
            "-p KillSignal -p TimeoutStopUSec -p LimitNOFILE -p Restart"
        ).splitlines()
    )
    assert props["User"] == "iot-gateway"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["KillSignal"] == "15"
    assert props["Restart"] == "on-failure"
    assert props["TimeoutStopUSec"] == "1min"
    assert int(props["LimitNOFILE"]) >= 65536
    pids = host.check_output(f"systemctl show {SERVICE} -p MainPID --value")
    assert host.check_output(f"ps -o user= -p {pids}").strip() == "iot-gateway"


def test_secrets_readable_by_the_service_only(host):
    for path in (CONFIG, REGISTRY):
        f = host.file(path)
        assert f.user == "root"
        assert f.group == "iot-gateway"
        assert f.mode == 0o640
    assert host.file("/etc/iot-gateway").mode == 0o750
    assert host.run(f"runuser -u nobody -- cat {REGISTRY}").rc != 0


def test_registry_holds_a_generated_fleet_key(host):
    registry = _registry(host)
    assert registry["version"] == 1
    (fleet,) = registry["fleets"]
    assert fleet["prefix"] == "sim-"
    assert len(bytes.fromhex(fleet["master_key"])) == 32


def test_udp_port_bound(host):
    port = _config(host)["udp"]["port"]
    assert host.socket(f"udp://0.0.0.0:{port}").is_listening


def test_ready(host):
    port = _config(host)["http"]["port"]
    assert host.run(f"curl -sf http://127.0.0.1:{port}/readyz").rc == 0
    metrics = host.check_output(f"curl -sf http://127.0.0.1:{port}/metrics")
    assert "iot_gateway_ready 1.0" in metrics


def test_signed_datagram_is_acked_and_lands_in_kafka(host):
    config, registry = _config(host), _registry(host)
    master_key = bytes.fromhex(registry["fleets"][0]["master_key"])
    run_id = f"molecule-{secrets.token_hex(6)}"
    device_id = f"sim-molecule-{secrets.token_hex(4)}"
    key = derive_device_key(master_key, device_id)
    seq = 41
    payload = json.dumps({"run": run_id, "temperature_c": 21.5}).encode()
    datagram = encode_data(device_id, key, seq, [(int(time.time() * 1000), payload)])

    answer = parse_response(_exchange(_address(host), config["udp"]["port"], datagram), key)

    assert answer == Ack(device_id=device_id, ack_seq=seq)
    record = asyncio.run(_find_record(config["kafka"]["bootstrap_servers"], config["kafka"]["topic"], run_id))
    assert record is not None, f"run {run_id} not found in Kafka at {config['kafka']['bootstrap_servers']}"
    assert record["key"] == device_id
    assert record["device_id"] == device_id
    assert record["seq"] == seq
    assert record["proto"] == "ibp1"
    assert record["payload"] == {"run": run_id, "temperature_c": 21.5}


def test_datagram_with_a_wrong_key_is_refused(host):
    config = _config(host)
    device_id = f"sim-intruder-{secrets.token_hex(4)}"
    datagram = encode_data(device_id, secrets.token_bytes(32), 1, [(0, b'{"run": "intruder"}')])
    answer = parse_response(_exchange(_address(host), config["udp"]["port"], datagram))
    assert answer == AuthFail()


def test_sigterm_drains_and_exits_cleanly(host):
    """Stop through systemd (SIGTERM): the gateway must exit by itself with status 0, then come back."""
    try:
        host.check_output(f"systemctl stop {SERVICE}")
        props = host.check_output(f"systemctl show {SERVICE} -p ExecMainCode -p ExecMainStatus -p Result")
        assert "ExecMainCode=1" in props, props  # 1 = exited (not killed by a signal)
        assert "ExecMainStatus=0" in props, props
        assert "Result=success" in props, props
    finally:
        host.check_output(f"systemctl start {SERVICE}")
    port = _config(host)["http"]["port"]
    assert (
        host.run(
            f"for i in $(seq 60); do curl -sf http://127.0.0.1:{port}/readyz && exit 0; sleep 1; done; exit 1"
        ).rc
        == 0
    )
