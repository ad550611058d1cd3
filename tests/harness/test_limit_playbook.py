"""The limit search through burst.yml: figures read from a bundle, and a failed playbook is not a size.

The bundle-reading half is also held against real runs in test_limit_real.py (the same step whichever
runner ran it); here the Prometheus half gets series in the shape ``/api/v1/query_range`` returns, and
the playbook half runs the real ansible-playbook against agents that cannot be reached.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.limit import main
from harness.limit_playbook import (
    PlaybookRunner,
    StepError,
    counters_of,
    gateway_cpu,
    gateway_names,
    kernel_drops,
    step_from_bundle,
)
from simulator.scenario import load

ROOT = Path(__file__).resolve().parents[2]


def _range(metric: dict[str, str], values: list[float | str]) -> dict:
    return {"metric": metric, "values": [[1_700_000_000 + i, str(v)] for i, v in enumerate(values)]}


PROM = {
    "udp_receive_errors_per_s": {
        "query": "sum(rate(iot_udp_receive_buffer_errors_total[10s]))",
        "result": [_range({}, [0, 0, 120.5, 300, "NaN", 79.5, 0])],
        "error": None,
    },
    "host_cpu_busy": {
        "query": "1 - avg by (instance) (rate(node_cpu_seconds_total{mode='idle'}[10s]))",
        "result": [
            _range({"instance": "gateway-0"}, [0.2, 0.95, 0.5]),  # the gateway host, by inventory name
            _range({"instance": "agent-0"}, [0.99, 1.0, 0.3]),  # an agent: not counted
            _range({"instance": "10.213.2.20:9100"}, [0.1, 0.7]),  # a scrape labelled by address
        ],
        "error": None,
    },
}


def test_kernel_drops_integrate_the_rate_series() -> None:
    assert kernel_drops(PROM) == 500
    assert kernel_drops({}) == 0


INVENTORY = {
    "_meta": {
        "hostvars": {
            "gateway-0": {"ansible_host": "10.213.2.11"},
            "agent-0": {"ansible_host": "10.213.2.12"},
        }
    }
}


def test_gateway_names_map_the_address_to_inventory_hosts() -> None:
    assert gateway_names(INVENTORY, "10.213.2.11:5000") == {"10.213.2.11", "gateway-0"}
    assert gateway_names({}, "10.213.2.11:5000") == {"10.213.2.11"}


def test_gateway_cpu_is_the_gateway_hosts_peak() -> None:
    assert gateway_cpu(PROM, gateway_names(INVENTORY, "10.213.2.11:5000")) == 0.95
    assert gateway_cpu(PROM, gateway_names(INVENTORY, "10.213.2.20:5000")) == 0.7
    assert gateway_cpu(PROM, gateway_names(INVENTORY, "10.213.9.9:5000")) is None


def test_counters_are_summed_over_agents() -> None:
    agents = [{"counters": {"busy": 3, "acked": 10, "state": "done"}}, {"counters": {"busy": 4, "acked": 5}}]
    assert counters_of(agents) == {"busy": 7, "acked": 15}


def test_a_bundle_without_audit_is_a_step_error(tmp_path: Path) -> None:
    with pytest.raises(StepError, match=r"no audit\.json"):
        step_from_bundle(tmp_path, 100, wall_s=1.0, command="x")


def test_unreachable_agents_stop_the_search_instead_of_reading_as_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """burst.yml's preflight fails on hosts nobody answers: exit 2 with the step's log named, no report."""
    inventory = tmp_path / "hosts.yml"
    host = {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_python_interpreter": "/usr/bin/python3"}
    inventory.write_text(
        json.dumps(
            {
                "all": {
                    "vars": {"ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no"},
                    "children": {
                        "agents": {"hosts": {"agent-1": host}},
                        "gateways": {"hosts": {"gateway-1": host}},
                        "brokers": {"hosts": {"broker-1": host}},
                    },
                }
            }
        )
    )
    code = main(str(ROOT / "scenarios" / "smoke.yml"), "devices", 10, 20, tmp_path, 120, 2, inventory)
    err = capsys.readouterr().err
    assert code == 2
    assert "not a size limit" in err and "no audit.json" in err and "burst.yml exited" in err
    (log,) = tmp_path.glob("limit-*/steps/*.log")
    assert "UNREACHABLE" in log.read_text() or "unreachable" in log.read_text()
    assert not list(tmp_path.glob("limit-*/limit.json"))


def test_missing_inventory_is_named(tmp_path: Path) -> None:
    scn, _ = load(str(ROOT / "scenarios" / "smoke.yml"))
    with pytest.raises(StepError, match="no such file"):
        PlaybookRunner(scn, "devices", tmp_path, tmp_path / "nope.yml", tmp_path / "steps")
