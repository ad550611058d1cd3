"""Verify the gateway role on a real systemd host against the real broker of the same scenario.

Runs on the control node (Molecule's testinfra verifier): host checks go over SSH, while the
end-to-end check sends a signed IBP/1 datagram over UDP from this process to the gateway host and
reads the resulting record back from Kafka on the broker host.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import time

import testinfra.utils.ansible_runner
import yaml
from aiokafka import AIOKafkaConsumer

from ibp.protocol import (
    Ack,
    AuthFail,
    derive_device_key,
    encode_data,
    encode_legacy_binary,
    parse_response,
)

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


def test_venv_holds_the_gateway_extra_only(host):
    """The role installs iot-burst-pilot[gateway] from the wheelhouse: its dependencies are there, the
    agent's, the audit's and the report's are not."""
    venv = "/opt/iot-gateway/venv"
    present = host.check_output(
        f"{venv}/bin/python -m pip show iot-burst-pilot aiokafka prometheus-client pydantic"
    )
    assert present.count("Name:") == 4, present
    shown = host.run(f"{venv}/bin/python -m pip show matplotlib hdrhistogram boto3 aiohttp")
    assert "Name:" not in shown.stdout, shown.stdout


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


def test_runs_the_native_hot_path(host):
    """gateway_native (default true): the role installed the ibp_native wheel that `make dist` built, and
    the running gateway uses it (its /healthz names the codec; a stale or missing build says python)."""
    port = _config(host)["http"]["port"]
    health = host.check_output(f"curl -sf http://127.0.0.1:{port}/healthz")
    assert "codec=native" in health, health
    shown = host.check_output("/opt/iot-gateway/venv/bin/python -m pip show ibp-native")
    assert "Name: ibp-native" in shown, shown


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


def _metric(host, name: str) -> float:
    """Sum of the samples called ``name`` on the gateway's /metrics (0.0 when absent)."""
    port = _config(host)["http"]["port"]
    total = 0.0
    for line in host.check_output(f"curl -sf http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _main_pid(host) -> str:
    return host.check_output(f"systemctl show {SERVICE} -p MainPID --value").strip()


def _ask_until(address: str, port: int, datagram: bytes, key: bytes, want, attempts: int = 20):
    """Send until the answer is ``want`` (a reload applies asynchronously); the last answer otherwise."""
    answer = None
    for _ in range(attempts):
        try:
            answer = parse_response(_exchange(address, port, datagram, attempts=1), key)
        except (AssertionError, ValueError):
            answer = None
        if answer == want:
            return answer
        time.sleep(1.0)
    return answer


def test_reload_and_state_directory_in_the_unit(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {SERVICE} -p ExecReload -p StateDirectory"
        ).splitlines()
    )
    assert "/bin/kill" in props["ExecReload"] and "-HUP" in props["ExecReload"], props["ExecReload"]
    assert props["StateDirectory"] == "iot-gateway"
    state = host.file("/var/lib/iot-gateway")
    assert state.is_directory and state.user == "iot-gateway" and state.mode == 0o700
    assert _config(host)["state"]["dir"] == "/var/lib/iot-gateway"


def test_legacy_input_is_closed_by_default(host):
    config = _config(host)
    assert config["devices"]["legacy_binary"] is False
    assert config["devices"]["legacy_json"] is False
    before = _metric(host, 'iot_invalid_datagrams_total{reason="legacy_disabled"}')
    legacy = encode_legacy_binary("sim-legacy", 7, {"t": 1})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(3):  # no answer to wait for: send a few, one is enough to be counted
            sock.sendto(legacy, (_address(host), config["udp"]["port"]))
    deadline = time.monotonic() + 30
    while _metric(host, 'iot_invalid_datagrams_total{reason="legacy_disabled"}') <= before:
        assert time.monotonic() < deadline, "the legacy datagrams were not refused as legacy_disabled"
        time.sleep(0.5)
    journal = host.check_output(f"journalctl -u {SERVICE} --no-pager -o cat")
    assert "event=legacy_input_enabled" not in journal


def test_registry_reload_admits_a_new_device_without_a_restart(host):
    config = _config(host)
    address, port = _address(host), config["udp"]["port"]
    original = host.file(REGISTRY).content_string
    device_id = f"esp32-molecule-{secrets.token_hex(4)}"
    key = secrets.token_bytes(32)
    datagram = encode_data(device_id, key, 5, [(int(time.time() * 1000), b'{"run": "reload"}')])
    assert parse_response(_exchange(address, port, datagram), key) == AuthFail()
    pid = _main_pid(host)
    registry = yaml.safe_load(original)
    registry["devices"] = {**(registry.get("devices") or {}), device_id: key.hex()}
    encoded = base64.b64encode(yaml.safe_dump(registry).encode()).decode()
    try:
        host.check_output(f"echo {encoded} | base64 -d > {REGISTRY}")
        host.check_output(f"systemctl reload {SERVICE}")
        assert _ask_until(address, port, datagram, key, Ack(device_id, 5)) == Ack(device_id, 5)
        assert _main_pid(host) == pid  # reloaded, not restarted
        journal = host.check_output(f"journalctl -u {SERVICE} --no-pager -o cat")
        assert "event=registry_reloaded" in journal
    finally:
        encoded = base64.b64encode(original.encode()).decode()
        host.check_output(f"echo {encoded} | base64 -d > {REGISTRY}")
        host.check_output(f"systemctl reload {SERVICE}")


def test_replay_after_a_restart_is_not_produced_again(host):
    config, registry = _config(host), _registry(host)
    address, port = _address(host), config["udp"]["port"]
    master_key = bytes.fromhex(registry["fleets"][0]["master_key"])
    device_id = f"sim-replay-{secrets.token_hex(4)}"
    key = derive_device_key(master_key, device_id)
    datagram = encode_data(device_id, key, 100, [(int(time.time() * 1000), b'{"run": "replay"}')])
    assert parse_response(_exchange(address, port, datagram), key) == Ack(device_id, 100)
    host.check_output(f"systemctl restart {SERVICE}")
    http = config["http"]["port"]
    assert (
        host.run(
            f"for i in $(seq 60); do curl -sf http://127.0.0.1:{http}/readyz && exit 0; sleep 1; done; exit 1"
        ).rc
        == 0
    )
    assert (
        host.run(f"grep -qs ' {device_id}$' /var/lib/iot-gateway/w0.snap /var/lib/iot-gateway/w1.snap").rc
        == 0
    )
    assert _ask_until(address, port, datagram, key, Ack(device_id, 100)) == Ack(device_id, 100)
    # workers publish their counters together: once the ACK is counted, so is what led to it
    deadline = time.monotonic() + 30
    while _metric(host, "iot_acks_sent_total") < 1:
        assert time.monotonic() < deadline, "the ACK was never counted"
        time.sleep(0.5)
    assert _metric(host, "iot_duplicate_readings_total") >= 1
    assert _metric(host, "iot_messages_produced_total") == 0  # answered from the restored mark
