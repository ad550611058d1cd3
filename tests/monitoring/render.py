"""Render the monitoring role's Prometheus config for a given inventory, outside Ansible.

The role renders ``roles/monitoring/templates/prometheus.yml.j2`` with Ansible; the tests and
``make monitoring-check`` render the same template with Jinja2 (Ansible's own engine) and the role's
defaults, so what promtool and the real Prometheus in the tests read is what the role deploys.

    python -m tests.monitoring.render --rules-dir DIR > prometheus.yml   # a sample inventory
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
RULES_DIR = ROLE / "files" / "rules"

SAMPLE_GROUPS = {
    "gateways": ["gw1", "gw2"],
    "agents": ["agent1", "agent2"],
    "brokers": ["broker1"],
    "monitoring": ["mon1"],
}


def role_defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


def render_template(name: str, **context: Any) -> str:
    """Render one of the role's templates with its defaults overlaid by ``context``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    values = role_defaults()
    # defaults that are Jinja expressions evaluated per host by Ansible
    values.update(
        inventory_hostname="mon1",
        monitoring_prometheus_instance="mon1",
        monitoring_grafana_prometheus_url="http://127.0.0.1:9090",
    )
    values.update(context)
    return env.get_template(name).render(**values)


def render_prometheus_config(
    groups: dict[str, list[str]], hostvars: dict[str, dict[str, Any]], **overrides: Any
) -> str:
    all_hosts = sorted({h for hosts in groups.values() for h in hosts})
    full_hostvars = {h: dict(hostvars.get(h, {})) for h in all_hosts}
    return render_template(
        "prometheus.yml.j2", groups={**groups, "all": all_hosts}, hostvars=full_hostvars, **overrides
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the role's prometheus.yml for a sample inventory")
    parser.add_argument("--rules-dir", default=str(RULES_DIR), help="directory of *.rules.yml")
    args = parser.parse_args(argv)
    sys.stdout.write(render_prometheus_config(SAMPLE_GROUPS, {}, monitoring_rules_dir=args.rules_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
