"""The `terraform test` suites (provider-free modules, and the root module's plan-level suite with a
mock AWS provider), and the inventory module's rendered file checked by Ansible itself
(ansible-inventory) and yamllint, as site.yml would read it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.timeout(
    3600
)  # where neither terraform nor tofu is installed, OpenTofu is built first

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

THREE_BROKER_ROOT = """
module "inventory" {{
  source = "{module}"

  brokers = [
    {{ name = "broker-0", public_ip = "198.51.100.10", private_ip = "10.0.1.10" }},
    {{ name = "broker-1", public_ip = "198.51.100.11", private_ip = "10.0.1.11" }},
    {{ name = "broker-2", public_ip = "198.51.100.12", private_ip = "10.0.1.12" }},
  ]
  gateways   = [{{ name = "gateway-0", public_ip = "198.51.100.20", private_ip = "10.0.1.20" }}]
  agents     = [{{ name = "agent-0", public_ip = "", private_ip = "10.0.1.30" }}]
  monitoring = [{{ name = "monitoring-0", public_ip = "198.51.100.40", private_ip = "10.0.1.40" }}]

  s3_data_bucket       = "pilot-automq-data-test"
  s3_ops_bucket        = "pilot-automq-ops-test"
  s3_region            = "eu-west-1"
  ssh_private_key_file = "~/.ssh/pilot"
}}

output "yaml" {{
  value = module.inventory.yaml
}}
"""


# Provider-free modules and the number of `run` blocks their test suites hold.
PROVIDER_FREE_MODULES = {"inventory": 12, "security_rules": 7, "policies": 3, "fleet_layout": 5}
ROOT_MODULE_RUNS = 9


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)


@pytest.mark.parametrize("module", sorted(PROVIDER_FREE_MODULES))
def test_module_test_suite_passes(
    module: str, tf_bin: Path, tf_env: dict[str, str], terraform_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / module
    shutil.copytree(terraform_dir / "modules" / module, copy)
    proc = _run([str(tf_bin), "init", "-input=false", "-no-color"], copy, tf_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([str(tf_bin), "test", "-no-color"], copy, tf_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{PROVIDER_FREE_MODULES[module]} passed, 0 failed" in proc.stdout, proc.stdout


def test_root_module_plan_suite_passes(
    tf_bin: Path, tf_env: dict[str, str], terraform_dir: Path, tmp_path: Path
) -> None:
    """terraform/tests/root.tftest.hcl: counts, IMDSv2, encryption, SG rules, NAT/endpoint, validations,
    planned with a mock AWS provider (the real provider's schemas, no API)."""
    copy = tmp_path / "terraform"
    shutil.copytree(
        terraform_dir, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", "*.tfvars")
    )
    proc = _run(
        [str(tf_bin), "init", "-input=false", "-backend=false", "-lockfile=readonly", "-no-color"],
        copy,
        tf_env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([str(tf_bin), "test", "-no-color"], copy, tf_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ROOT_MODULE_RUNS} passed, 0 failed" in proc.stdout, proc.stdout


@pytest.fixture
def rendered_inventory(tf_bin: Path, tf_env: dict[str, str], terraform_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        THREE_BROKER_ROOT.format(module=terraform_dir / "modules" / "inventory"), encoding="utf-8"
    )
    for cmd in (
        ["init", "-input=false", "-no-color"],
        ["apply", "-auto-approve", "-input=false", "-no-color"],
    ):
        proc = _run([str(tf_bin), *cmd], root, tf_env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([str(tf_bin), "output", "-raw", "yaml"], root, tf_env)
    assert proc.returncode == 0, proc.stderr
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(proc.stdout, encoding="utf-8")
    return hosts


def test_ansible_reads_rendered_inventory(rendered_inventory: Path) -> None:
    proc = _run([str(VENV_BIN / "ansible-inventory"), "-i", str(rendered_inventory), "--list"], ROOT)
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)

    assert inv["brokers"]["hosts"] == ["broker-0", "broker-1", "broker-2"]
    assert inv["gateways"]["hosts"] == ["gateway-0"]
    assert inv["agents"]["hosts"] == ["agent-0"]
    assert inv["monitoring"]["hosts"] == ["monitoring-0"]

    hostvars = inv["_meta"]["hostvars"]
    assert [hostvars[f"broker-{i}"]["automq_node_id"] for i in range(3)] == [0, 1, 2]
    assert hostvars["broker-2"]["ansible_host"] == "198.51.100.12"
    assert hostvars["broker-2"]["private_ip"] == "10.0.1.12"
    assert hostvars["agent-0"]["ansible_host"] == "10.0.1.30"  # no public IP: private one
    assert "automq_node_id" not in hostvars["gateway-0"]
    assert hostvars["broker-0"]["automq_listen_address"] == "10.0.1.10"
    assert hostvars["agent-0"]["monitoring_scrape_address"] == "10.0.1.30"

    broker = hostvars["broker-1"]  # group vars of `all` reach every host
    assert "automq_controller_quorum_voters" not in broker  # the automq role derives the voters itself
    assert broker["ansible_ssh_common_args"] == "-o StrictHostKeyChecking=accept-new"
    assert broker["automq_s3_data_bucket"] == "pilot-automq-data-test"
    assert broker["automq_s3_ops_bucket"] == "pilot-automq-ops-test"
    assert broker["automq_s3_region"] == "eu-west-1"
    assert broker["automq_s3_endpoint"] == ""
    assert (
        hostvars["gateway-0"]["gateway_kafka_bootstrap_servers"]
        == "10.0.1.10:9092,10.0.1.11:9092,10.0.1.12:9092"
    )
    assert hostvars["gateway-0"]["ansible_ssh_private_key_file"] == "~/.ssh/pilot"
    assert hostvars["monitoring-0"]["ansible_user"] == "admin"


def test_rendered_inventory_is_lint_clean_yaml(rendered_inventory: Path) -> None:
    text = rendered_inventory.read_text(encoding="utf-8")
    assert text.startswith("# Ansible inventory rendered by Terraform")
    assert set(yaml.safe_load(text)["all"]["children"]) == {"brokers", "gateways", "agents", "monitoring"}
    proc = _run(
        [str(VENV_BIN / "yamllint"), "--strict", "-c", str(ROOT / ".yamllint"), str(rendered_inventory)], ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_fmt_check_covers_every_file(
    tf_bin: Path, tf_env: dict[str, str], terraform_dir: Path, tmp_path: Path
) -> None:
    proc = _run([str(tf_bin), "fmt", "-check", "-recursive", str(terraform_dir)], ROOT, tf_env)
    assert proc.returncode == 0, f"run `make tf-fmt`; badly formatted:\n{proc.stdout}"
    # The same check fails on a misformatted copy, so it really looks at the files.
    bad = tmp_path / "bad"
    shutil.copytree(terraform_dir / "modules" / "inventory", bad)
    (bad / "versions.tf").write_text('terraform {\nrequired_version=">= 1.8.0"\n}\n', encoding="utf-8")
    proc = _run([str(tf_bin), "fmt", "-check", "-recursive", str(bad)], ROOT, tf_env)
    assert proc.returncode != 0
    assert "versions.tf" in proc.stdout
