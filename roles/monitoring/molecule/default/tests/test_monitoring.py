"""Verify the monitoring role on real systemd hosts: Prometheus and node_exporter running and
scraping (across hosts), rules loaded; Grafana's rendered provisioning files, dashboards and admin
password file (Grafana itself is not installed here: its apt repository is unreachable).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import testinfra.utils.ansible_runner
import yaml

RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = RUNNER.get_hosts("all")
SECRET = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / "grafana-admin-password"
DASHBOARDS = Path(__file__).resolve().parents[5] / "dashboards" / "json"


def _is_server(host) -> bool:
    return host.backend.get_hostname() in RUNNER.get_hosts("monitoring")


def _get(host, url: str) -> str:
    """GET from inside the host (python3 is there on every Ansible-managed host; curl may not be)."""
    code = (
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"
    )
    return host.check_output(f"python3 -c '{code}' '{url}'")


def _api(host, path: str) -> dict:
    out = _get(host, f"http://127.0.0.1:9090/api/v1/{path}")
    body = json.loads(out)
    assert body["status"] == "success", body
    return body["data"]


def test_node_exporter_runs_everywhere(host) -> None:
    service = host.service("prometheus-node-exporter")
    assert service.is_running and service.is_enabled
    assert host.socket("tcp://0.0.0.0:9100").is_listening
    assert "node_cpu_seconds_total" in _get(host, "http://127.0.0.1:9100/metrics")


def test_prometheus_only_on_the_server(host) -> None:
    if _is_server(host):
        service = host.service("prometheus")
        assert service.is_running and service.is_enabled
    else:
        assert not host.package("prometheus").is_installed


def test_prometheus_scrapes_both_hosts_and_loads_the_rules(host) -> None:
    if not _is_server(host):
        return
    deadline = time.monotonic() + 60
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = {
            f"{t['labels']['job']}/{t['labels']['instance']}": t["health"]
            for t in _api(host, "targets?state=active")["activeTargets"]
        }
        if health.get("node/mon-server") == "up" and health.get("node/mon-node") == "up":
            break
        time.sleep(1)
    assert health.get("prometheus/mon-server") == "up", health
    assert health.get("node/mon-server") == "up", health
    assert health.get("node/mon-node") == "up", health
    # the agent host is in the agents group, nothing serves agent metrics there: a real "down" target
    assert health.get("agent/mon-node") == "down", health
    # data really arrives: node_exporter series of the other host
    result = _api(host, "query?query=node_uname_info%7Binstance%3D%22mon-node%22%7D")["result"]
    assert result and result[0]["metric"]["job"] == "node"
    groups = {g["name"]: g for g in _api(host, "rules")["groups"]}
    assert {"iot-burst-recording", "iot-burst-alerts"} <= set(groups)
    alerts = {r["name"] for r in groups["iot-burst-alerts"]["rules"]}
    assert {"IotGatewayDown", "IotBrokerDown", "IotAgentClockSkew", "IotAckLatencyAboveSlo"} <= alerts
    assert all(r["health"] in ("ok", "unknown") for g in groups.values() for r in g["rules"])


def test_grafana_provisioning_files(host) -> None:
    if not _is_server(host):
        assert not host.file("/etc/grafana/provisioning").exists
        return
    ds = yaml.safe_load(host.file("/etc/grafana/provisioning/datasources/iot-prometheus.yml").content_string)
    source = ds["datasources"][0]
    assert source["uid"] == "iot-prometheus" and source["type"] == "prometheus"
    # the datasource URL is the Prometheus this host runs
    assert "Ready" in _get(host, f"{source['url']}/-/ready")
    provider = yaml.safe_load(host.file("/etc/grafana/provisioning/dashboards/iot-burst.yml").content_string)
    path = provider["providers"][0]["options"]["path"]
    installed = sorted(host.file(path).listdir())
    shipped = sorted(p.name for p in DASHBOARDS.glob("*.json"))
    assert len(shipped) == 5, f"no dashboards found in {DASHBOARDS}"
    assert installed == shipped
    for name in installed:
        dash = json.loads(host.file(f"{path}/{name}").content_string)
        assert dash["uid"] == name.removesuffix(".json")


def test_grafana_admin_password_comes_from_the_run_secret(host) -> None:
    if not _is_server(host):
        return
    secret = host.file("/etc/grafana/admin-password")
    assert secret.mode == 0o640 and secret.user == "root"
    assert secret.content_string == SECRET.read_text().strip()
    assert secret.content_string != "admin"
    ini = host.file("/etc/grafana/grafana.ini").content_string
    assert "admin_password = $__file{/etc/grafana/admin-password}" in ini
