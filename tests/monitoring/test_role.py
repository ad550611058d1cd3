"""The monitoring role without hosts: its password guard (real ansible-playbook, local connection)
and its Grafana provisioning templates (rendered and compared with dashboards/provisioning/)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.monitoring.render import ROLE, ROOT, render_template

PLAYBOOK = """
- name: Run the monitoring role's variable checks
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: monitoring
        tasks_from: validate.yml
"""


def _validate(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    playbook = tmp_path / "validate.yml"
    playbook.write_text(PLAYBOOK)
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(playbook)]
    args += ["-e", "monitoring_grafana_enabled=true"]
    for key, value in extra.items():
        args += ["-e", f"{key}={value}"]
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "roles"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180)


@pytest.mark.parametrize("password", [None, "admin", "short"])
def test_grafana_without_a_vault_password_fails_naming_the_variable(tmp_path: Path, password) -> None:
    extra = {} if password is None else {"monitoring_grafana_admin_password": password}
    result = _validate(tmp_path, **extra)
    assert result.returncode != 0, result.stdout
    assert "monitoring_grafana_admin_password is unset" in result.stdout
    assert "Ansible Vault" in result.stdout


def test_a_proper_password_passes_and_is_not_printed(tmp_path: Path) -> None:
    secret = "xK3-not-a-real-secret-9q"
    result = _validate(tmp_path, monitoring_grafana_admin_password=secret)
    assert result.returncode == 0, result.stdout + result.stderr
    assert secret not in result.stdout


def test_role_datasource_matches_the_shipped_provisioning_file() -> None:
    shipped = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/iot-prometheus.yml").read_text())
    rendered = yaml.safe_load(
        render_template(
            "grafana-datasource.yml.j2",
            ansible_managed="test",
            monitoring_grafana_prometheus_url="http://10.0.0.7:9090",
        )
    )
    ours, theirs = rendered["datasources"][0], shipped["datasources"][0]
    assert ours["url"] == "http://10.0.0.7:9090"
    assert ours["jsonData"]["timeInterval"] == "5s"
    for key in ("name", "uid", "type", "access", "isDefault"):
        assert ours[key] == theirs[key], key


def test_role_dashboard_provider_matches_the_shipped_one() -> None:
    shipped = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/iot-burst.yml").read_text())
    rendered = yaml.safe_load(render_template("grafana-dashboards.yml.j2", ansible_managed="test"))
    assert rendered == shipped


def test_every_default_is_documented_in_argument_specs() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    assert set(defaults) == set(spec)
