"""The limit search's runner for deployed hosts: each step is one ``ansible/burst.yml`` run.

``python -m simulator limit --inventory INV`` (``make lab-limit`` on the lab) grows and bisects the herd
exactly as on one machine (simulator/orchestration/limit.py), but every step is the distributed burst a
user already runs by hand: the agents release their backlog at one T0 against the deployed gateway and
brokers, the audit runs inside the VPC, and the bundle lands in ``reports/<run-id>/``. The step's figures
come from that bundle alone (audit.json, agents/*.json, prometheus.json), so a step can be re-read or
re-checked later without the hosts.

Kernel UDP drops and gateway CPU are read from the run window's Prometheus series (the monitoring
host's scrape, step 1 s): drops are the integral of ``udp_receive_errors_per_s`` over the window, CPU the
highest ``host_cpu_busy`` of a gateway host. Without a monitoring host they are unknown (0 / None).

A step whose playbook fails without an audit (an unreachable host, a refused preflight) is not a
"size too large": the search stops with :class:`StepError`, naming the step's log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from simulator.orchestration.limit import StepResult
from simulator.report.bundle import load_agent_results
from simulator.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
PROGRESS_EVERY_S = 15.0


class StepError(RuntimeError):
    """burst.yml failed before its audit: the hosts, not the herd size, stopped the step."""


def counters_of(agent_results: list[dict[str, Any]]) -> dict[str, int]:
    """The fleet counters summed over every agent (what one machine's run reports as ``counters``)."""
    total: dict[str, int] = {}
    for r in agent_results:
        for key, value in (r.get("counters") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + int(value)
    return total


def _series(prom: dict[str, Any], name: str) -> list[dict[str, Any]]:
    entry = prom.get(name) or {}
    return list(entry.get("result") or [])


def kernel_drops(prom: dict[str, Any]) -> int:
    """Datagrams the gateways' kernels dropped in the window: the 1-s rate series summed over time."""
    total = 0.0
    for series in _series(prom, "udp_receive_errors_per_s"):
        total += sum(float(v) for _, v in series.get("values", []) if v not in ("NaN", "+Inf", "-Inf"))
    return round(total)


def gateway_names(inventory: dict[str, Any], gateway: str) -> set[str]:
    """The names the gateway's host goes by in Prometheus (``gateway`` is ``host:udp-port``).

    The monitoring role sets ``instance`` to the inventory host name, so the gateway's address is
    mapped back to the inventory hosts whose ``ansible_host`` it is; the address itself is kept for
    scrapes that label by address.
    """
    address = gateway.rpartition(":")[0]
    names = {address} if address else set()
    hostvars = (inventory.get("_meta") or {}).get("hostvars") or {}
    for name, hv in hostvars.items():
        if str((hv or {}).get("ansible_host", name)) == address:
            names.add(str(name))
    return names


def gateway_cpu(prom: dict[str, Any], names: set[str]) -> float | None:
    """The highest 1-s CPU share of the gateway's host (its names from :func:`gateway_names`), if scraped."""
    peak: float | None = None
    for series in _series(prom, "host_cpu_busy"):
        instance = str(series.get("metric", {}).get("instance", ""))
        if instance not in names and instance.rpartition(":")[0] not in names:
            continue
        for _, v in series.get("values", []):
            if v not in ("NaN", "+Inf", "-Inf"):
                peak = max(peak or 0.0, float(v))
    return None if peak is None else round(peak, 3)


def step_from_bundle(bundle: Path, size: float, *, wall_s: float, command: str) -> StepResult:
    """A search step from a burst.yml bundle (raises StepError when the run has no audit)."""
    from harness.limit import step_result

    audit_path = bundle / "audit.json"
    if not audit_path.is_file():
        raise StepError(f"{bundle}: no audit.json (the run stopped before its audit)")
    audit = json.loads(audit_path.read_text())
    agents = load_agent_results(bundle)
    prom_path, burst_path = bundle / "prometheus.json", bundle / "burst.json"
    prom = json.loads(prom_path.read_text()) if prom_path.is_file() else {}
    burst = json.loads(burst_path.read_text()) if burst_path.is_file() else {}
    inventory_path = bundle / "inventory.json"
    inventory = json.loads(inventory_path.read_text()) if inventory_path.is_file() else {}
    failures = [str(r["failure"]) for r in agents if r.get("failure")]
    return step_result(
        size,
        audit,
        counters_of(agents),
        failure="; ".join(failures),
        kernel_drops=kernel_drops(prom),
        gateway_cpu=gateway_cpu(prom, gateway_names(inventory, str(burst.get("gateway", "")))),
        wall_s=wall_s,
        bundle=str(bundle),
        command=command,
    )


class PlaybookRunner:
    """Runs each step as ``ansible-playbook -i INV ansible/burst.yml`` with the varied scenario."""

    def __init__(self, scn: Scenario, what: str, reports: Path, inventory: Path, steps_dir: Path) -> None:
        self.scn, self.what, self.reports, self.inventory = scn, what, reports, inventory
        self.steps_dir = steps_dir
        self.playbook = ROOT / "ansible" / "burst.yml"
        self.ansible = Path(sys.executable).parent / "ansible-playbook"
        if not inventory.is_file():
            raise StepError(f"--inventory {inventory}: no such file")

    def __enter__(self) -> PlaybookRunner:
        self.steps_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def run(self, size: float) -> StepResult:
        from harness.limit import vary
        from simulator.orchestration.runner import new_run_id

        scn = vary(self.scn, self.what, size)
        run_id = new_run_id(scn.name)
        scenario = self.steps_dir / f"{run_id}.yml"
        scenario.write_text(yaml.safe_dump(scn.to_dict(), sort_keys=False))
        log = self.steps_dir / f"{run_id}.log"
        argv = [
            str(self.ansible),
            "-i",
            str(self.inventory),
            str(self.playbook),
            "-e",
            f"scenario={scenario}",
            "-e",
            f"burst_run_id={run_id}",
            "-e",
            f"burst_reports_dir={self.reports.resolve()}",
        ]
        env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible" / "ansible.cfg")}
        t0 = time.monotonic()
        with log.open("w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            next_note = t0 + PROGRESS_EVERY_S
            while proc.poll() is None:
                time.sleep(1.0)
                if time.monotonic() >= next_note:
                    print(
                        f"limit: {self.what}={size:,g} running ({time.monotonic() - t0:.0f} s; {log})",
                        flush=True,
                    )
                    next_note += PROGRESS_EVERY_S
        wall = round(time.monotonic() - t0, 1)
        command = " ".join(argv)
        try:
            step = step_from_bundle(self.reports / run_id, size, wall_s=wall, command=command)
        except StepError as exc:
            raise StepError(f"{exc}; burst.yml exited {proc.returncode}, its output is in {log}") from None
        if proc.returncode != 0 and step.passed:
            raise StepError(f"burst.yml exited {proc.returncode} after a passing audit; see {log}")
        return step
