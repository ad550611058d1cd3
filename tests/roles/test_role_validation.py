"""The gateway and simulator roles refuse bad variables before touching a host, naming what to fix.

Each case runs the role with ansible-playbook against a host whose SSH port is closed (loopback port
1): argument-spec checks, asserts and lookups all run on the control node, so a bad variable must
fail there with its message. The valid case proves the checks pass good input: it gets past every
check and only fails at the first task that needs the host (unreachable).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
MASTER_KEY = "ab" * 32

PLAY = """
- name: Validate only
  hosts: target
  gather_facts: false
  roles:
    - role: {role}
"""

GATEWAY_OK = {
    "gateway_kafka_bootstrap_servers": "broker-1:9092",
    "iot_fleet_master_key": MASTER_KEY,
}
SIMULATOR_OK = {
    "iot_fleet_master_key": MASTER_KEY,
    "iot_simulator_token": "t" * 24,
}


def run_role(tmp_path: Path, role: str, extra: dict) -> subprocess.CompletedProcess[str]:
    wheel = tmp_path / "iot_burst_pilot-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel: validation only checks that the file exists")
    native = tmp_path / "ibp_native-0.1.0-cp311-cp311-manylinux_2_34_x86_64.whl"
    native.write_bytes(b"not really a wheel either: the compiled hot path's file must exist")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "hosts": {
                        "target": {
                            "ansible_host": "127.0.0.1",
                            "ansible_port": 1,
                            "ansible_connection": "ssh",
                            "ansible_python_interpreter": "/usr/bin/python3",
                        }
                    }
                }
            }
        )
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(role=role))
    extra_vars = {
        f"{role}_wheel": str(wheel),
        f"{role}_native_wheel": str(native),
        "iot_secrets_dir": str(tmp_path / "secrets"),
        **extra,
    }
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_TIMEOUT="5",
    )
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook), "-e", json.dumps(extra_vars)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("role", "extra", "expected"),
    [
        ("gateway", {**GATEWAY_OK, "gateway_udp_port": "five thousand"}, "gateway_udp_port"),
        (
            "gateway",
            {**GATEWAY_OK, "gateway_kafka_acks": "2"},
            "gateway_kafka_acks is now gateway_config.kafka.acks",
        ),
        (
            "gateway",
            {**GATEWAY_OK, "gateway_config": {"udp": {"port": 6000}, "kafka": {"linger_ms": 5}}},
            "gateway_config sets udp.port (gateway_udp_port)",
        ),
        ("gateway", {**GATEWAY_OK, "gateway_config": ["linger_ms"]}, "gateway_config"),
        ("gateway", {**GATEWAY_OK, "gateway_http_port": 5000}, "must be distinct ports"),
        ("gateway", {**GATEWAY_OK, "gateway_kafka_bootstrap_servers": ""}, "no usable Kafka bootstrap list"),
        (
            "gateway",
            {**GATEWAY_OK, "gateway_kafka_bootstrap_servers": "broker-1"},
            "no usable Kafka bootstrap list",
        ),
        ("gateway", {**GATEWAY_OK, "iot_fleet_master_key": "abc"}, "fleets ['sim-'] need"),
        ("gateway", {**GATEWAY_OK, "gateway_devices": {"esp32-1": "00"}}, "gateway_devices ['esp32-1']"),
        ("gateway", {**GATEWAY_OK, "gateway_wheel": "/nonexistent/x.whl"}, "make dist"),
        (
            "gateway",
            {
                **GATEWAY_OK,
                "gateway_native": True,
                "gateway_native_wheel": "/nonexistent/ibp_native-0.1.0.whl",
            },
            "gateway: no ibp_native wheel found (/nonexistent/ibp_native-0.1.0.whl)",
        ),
        (
            "simulator",
            {
                **SIMULATOR_OK,
                "simulator_native": True,
                "simulator_native_wheel": "/nonexistent/ibp_native-0.1.0.whl",
            },
            "simulator_native: false",
        ),
        (  # SASL completeness itself is the gateway's --check (tests/gateway/test_config.py)
            "gateway",
            {**GATEWAY_OK, "gateway_kafka_security_protocol": "SASL_SSL"},
            "gateway_kafka_security_protocol is now gateway_config.kafka.security_protocol",
        ),
        (
            "simulator",
            {**SIMULATOR_OK, "simulator_api_port": 70000},
            "simulator_api_port must be in 1..65535",
        ),
        ("simulator", {**SIMULATOR_OK, "iot_simulator_token": "short"}, "at least 16 printable characters"),
        (
            "simulator",
            {**SIMULATOR_OK, "simulator_agent_index": 2, "simulator_agent_count": 2},
            "agent index 2",
        ),
        ("simulator", {**SIMULATOR_OK, "simulator_service_state": "restarted"}, "simulator_service_state"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_bad_variable_fails_before_any_host_task(tmp_path, role, extra, expected):
    result = run_role(tmp_path, role, extra)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert expected in output, output
    assert "UNREACHABLE" not in output, "validation passed and the role went on to the host:\n" + output
    assert not (tmp_path / "secrets" / "fleet_master_key").exists() or role == "gateway"


@pytest.mark.parametrize(
    ("role", "extra"),
    [
        ("gateway", GATEWAY_OK),
        ("simulator", SIMULATOR_OK),
        # With the compiled hot path (the default): the native wheel is found (run_role passes one).
        ("gateway", {**GATEWAY_OK, "gateway_native": True}),
        ("simulator", {**SIMULATOR_OK, "simulator_native": True}),
        # Without it: no wheel needed, the pure-Python codec runs.
        ("gateway", {**GATEWAY_OK, "gateway_native": False, "gateway_native_wheel": "/nonexistent.whl"}),
        (
            "simulator",
            {**SIMULATOR_OK, "simulator_native": False, "simulator_native_wheel": "/nonexistent.whl"},
        ),
    ],
)
def test_valid_variables_pass_every_check(tmp_path, role, extra):
    result = run_role(tmp_path, role, extra)
    output = result.stdout + result.stderr
    assert "UNREACHABLE" in output, output
    assert "FAILED!" not in output, output
    # The first task that needs the host, right after the checks: the shared install path's.
    assert "TASK [python_app : Look for apt package lists]" in output, output


def test_generated_master_key_is_kept_outside_git_and_reused(tmp_path):
    extra = {k: v for k, v in GATEWAY_OK.items() if k != "iot_fleet_master_key"}
    run_role(tmp_path, "gateway", extra)
    key_file = tmp_path / "secrets" / "fleet_master_key"
    first = key_file.read_text().strip()
    assert len(bytes.fromhex(first)) == 32
    assert key_file.stat().st_mode & 0o077 == 0
    run_role(tmp_path, "gateway", extra)
    assert key_file.read_text().strip() == first
