"""The role's prometheus.yml template: targets from the inventory, accepted by promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.render import RULES_DIR, SAMPLE_GROUPS, render_prometheus_config


def _targets(config: dict, job: str) -> dict[str, str]:
    scrape = next(s for s in config["scrape_configs"] if s["job_name"] == job)
    return {sc["labels"]["instance"]: sc["targets"][0] for sc in scrape["static_configs"]}


def test_sample_inventory_config_passes_promtool(tmp_path: Path) -> None:
    path = tmp_path / "prometheus.yml"
    path.write_text(render_prometheus_config(SAMPLE_GROUPS, {}, monitoring_rules_dir=str(RULES_DIR)))
    result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_targets_follow_groups_and_host_variables() -> None:
    hostvars = {
        "gw1": {"ansible_host": "10.1.0.5", "gateway_http_port": 18080},
        "broker1": {"ansible_host": "10.1.0.9", "automq_flavor": "automq", "automq_telemetry_port": 8890},
        "broker2": {"monitoring_scrape_address": "b2.internal"},
        "agent1": {"simulator_metrics_port": 9999},
        "agent2": {"simulator_metrics_port": 7123, "simulator_api_port": 7000},
    }
    groups = {
        "gateways": ["gw1"],
        "agents": ["agent1", "agent2", "agent3"],
        "brokers": ["broker1", "broker2"],
        "monitoring": ["mon1"],
    }
    config = yaml.safe_load(render_prometheus_config(groups, hostvars))
    assert _targets(config, "gateway") == {"gw1": "10.1.0.5:18080"}
    assert _targets(config, "agent") == {
        "agent1": "agent1:9999",
        "agent2": "agent2:7123",
        "agent3": "agent3:7001",
    }
    assert "authorization" not in next(s for s in config["scrape_configs"] if s["job_name"] == "agent")
    assert _targets(config, "broker") == {"broker1": "10.1.0.9:8890", "broker2": "b2.internal:7071"}
    # node_exporter on every host, each once
    assert _targets(config, "node") == {
        "gw1": "10.1.0.5:9100",
        "agent1": "agent1:9100",
        "agent2": "agent2:9100",
        "agent3": "agent3:9100",
        "broker1": "10.1.0.9:9100",
        "broker2": "b2.internal:9100",
        "mon1": "mon1:9100",
    }
    assert config["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]


def test_an_empty_group_gives_a_job_without_targets() -> None:
    config = yaml.safe_load(render_prometheus_config({"gateways": ["gw1"], "monitoring": ["mon1"]}, {}))
    assert _targets(config, "agent") == {}


@pytest.mark.parametrize("interval", ["1s", "15s"])
def test_intervals_are_rendered(interval: str) -> None:
    config = yaml.safe_load(render_prometheus_config(SAMPLE_GROUPS, {}, monitoring_scrape_interval=interval))
    assert config["global"]["scrape_interval"] == interval


def test_agent_job_can_send_the_api_token(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 40)
    text = render_prometheus_config(
        SAMPLE_GROUPS, {}, monitoring_agent_bearer_token_file=str(token), monitoring_rules_dir=str(RULES_DIR)
    )
    agent = next(s for s in yaml.safe_load(text)["scrape_configs"] if s["job_name"] == "agent")
    assert agent["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
