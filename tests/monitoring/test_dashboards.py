"""Static checks of the Grafana dashboards and provisioning files (no Grafana runs here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.monitoring import queries

ROOT = queries.ROOT
PROVISIONING = ROOT / "dashboards" / "provisioning"
EXPECTED = {"iot-burst-overview", "iot-broker-kafka", "iot-broker-automq", "iot-hosts", "iot-agents"}


def test_committed_json_is_what_build_renders() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "dashboards" / "build.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_dashboard_queries_the_provisioned_datasource() -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "iot-prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    dashes = queries.dashboards()
    assert set(dashes) == EXPECTED
    for name, dash in dashes.items():
        assert dash["uid"] == name
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in dash["panels"]:
            assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid, (
                    f"{name}: {panel['title']!r} uses another datasource"
                )
                assert target["expr"].strip()


def test_overview_has_the_issue_panels_and_phase_annotations() -> None:
    dash = queries.dashboards()["iot-burst-overview"]
    text = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in (
        "iot_messages_received_total",
        "iot_messages_produced_total",
        "iot_ack_latency_ms_bucket",
        "iot_produce_latency_ms_bucket",
        "iot_active_devices",
        "iot_inflight_readings",
        "iot_busy_sent_total",
        "iot_invalid_datagrams_total",
        "iot_udp_receive_buffer_errors_total",
    ):
        assert metric in text, f"the overview shows no {metric}"
    names = [a["name"] for a in dash["annotations"]["list"]]
    assert "Run phases" in names


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel expression (variables substituted) as a recording rule."""
    rules = []
    builtins = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
    for uid, dash in queries.dashboards().items():
        variables = {v.name: "(a|b)" for v in queries.dashboard_variables(uid, dash)}
        for i, q in enumerate(queries.dashboard_queries(uid, dash)):
            rules.append(
                {
                    "record": f"check:{uid.replace('-', '_')}:{i}",
                    "expr": queries.substitute(q.expr, builtins, variables),
                }
            )
    path = tmp_path / "panels.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_provider_points_at_the_role_dashboards_dir() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "iot-burst.yml").read_text())
    defaults = yaml.safe_load((ROOT / "roles" / "monitoring" / "defaults" / "main.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == defaults["monitoring_grafana_dashboards_dir"]


def test_selectors_of_an_expression() -> None:
    expr = 'sum by (le) (rate(a_bucket{x="1}"}[5m])) / on (instance) group_left (y) b > bool 2 and up{job="g"} offset 1m'
    assert queries.selectors(expr) == ['a_bucket{x="1}"}', "b", 'up{job="g"}']
    assert queries.selectors("abs(iot_agent_clock_offset_seconds) > 0.5e3") == [
        "iot_agent_clock_offset_seconds"
    ]
