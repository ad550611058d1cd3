"""The gateway role passes gateway_config through, and the gateway's own --check is what validates it.

Each case runs the role's real config tasks (tasks/config.yml, its template and its ``validate:``
commands) on this machine with ansible-playbook, the gateway's interpreter being this checkout's: a
good gateway_config lands in the file over the role's deployment keys; a bad one is refused by
``python -m gateway --check`` naming each key and its line in the rendered file, and nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from gateway.config import load

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

PLAY = """
- name: Render the gateway configuration only
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: The role's configuration tasks
      ansible.builtin.include_role:
        name: gateway
        tasks_from: config.yml
    - name: Stop before the handlers (no gateway service on this machine)
      ansible.builtin.meta: end_play
"""


def render(tmp_path: Path, gateway_config: dict) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    extra = {
        "gateway_config": gateway_config,
        "gateway_config_dir": str(tmp_path / "etc"),
        "gateway_group": "root",
        "gateway_venv": sys.prefix,
        "gateway_kafka_bootstrap_servers": "broker-1:9092,broker-2:9092",
        "iot_fleet_master_key": "ab" * 32,
        "iot_secrets_dir": str(tmp_path / "secrets"),
        "ansible_python_interpreter": sys.executable,
    }
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )


def test_gateway_config_is_passed_through_over_the_deployment_keys(tmp_path: Path) -> None:
    result = render(
        tmp_path, {"kafka": {"linger_ms": 5, "acks": 1}, "limits": {"max_inflight_readings": 400000}}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cfg = load(tmp_path / "etc" / "gateway.yml", {})
    assert (cfg.kafka.linger_ms, cfg.kafka.acks, cfg.limits.max_inflight_readings) == (5, "1", 400000)
    assert (cfg.udp.port, cfg.http.port, cfg.kafka.topic) == (5000, 8080, "iot_telemetry")
    assert cfg.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert cfg.devices.registry == str(tmp_path / "etc" / "devices.yml")
    assert (cfg.devices.legacy_binary, cfg.devices.legacy_json) == (False, False)
    assert cfg.kafka.compression == "lz4"  # unset keys keep the gateway's own defaults


def test_a_bad_gateway_config_is_refused_by_the_gateway_check(tmp_path: Path) -> None:
    result = render(tmp_path, {"kafka": {"linger_ms": -5, "acks": 2}, "log": {"colour": "red"}})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    for problem in (
        r"kafka\.linger_ms: must be in 0\.\.10000",
        r"kafka\.acks: must be one of all, 1, 0, -1",
        r"log\.colour: unknown key",
    ):
        assert re.search(r":\d+: " + problem, output), (problem, output)
    assert not (tmp_path / "etc" / "gateway.yml").exists()
