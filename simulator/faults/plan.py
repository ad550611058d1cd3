"""Faults of a distributed run: where and when each one fires (the plan), and what happened (the log).

``ansible/burst.yml`` asks for the plan before arming the agents, starts each fault on its host as a
transient systemd unit running ``ansible/files/ibp-fault`` (which sleeps until the planned wall-clock
time, injects the fault, undoes it and logs each step as JSON lines), fetches those logs after the run
and asks for ``faults.json``, which the auditor reads (times, and the duplicates each fault explains).

    python -m simulator.faults.plan plan --scenario S --t0 T --groups '{"brokers": [...], ...}' --gateway H:P
    python -m simulator.faults.plan collect --bundle reports/<run-id>

See docs/faults.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.orchestration.api import gateway_addresses
from simulator.report.bundle import load_agent_results
from simulator.scenario import FaultEvent, Scenario, ScenarioError, flush_offset_s, load

GROUP_OF = {
    "broker-restart": "brokers",
    "broker-kill": "brokers",
    "broker-node-loss": "brokers",
    "gateway-restart": "gateways",
    "gateway-host-loss": "gateways",
    "link-impair": "agents",
    "partition": "agents",
    "agent-reboot": "agents",
    "disk-full": "agents",
}
# The scenario keys that matter for each action (reported with the fault).
PARAMS = {
    "broker-restart": ("down_s",),
    "broker-kill": ("down_s",),
    "broker-node-loss": (),
    "gateway-restart": ("signal",),
    "gateway-host-loss": (),
    "partition": ("duration_s",),
    "link-impair": ("duration_s", "loss_percent", "delay_ms", "jitter_ms", "reorder_percent"),
    "agent-reboot": (),
    "disk-full": ("duration_s", "max_fill_mb"),
}
# Log events that mark a fault's start and its end (the host is back to normal).
START, END = "start", "end"
# A host lost for the rest of the run: its log goes down with it, and the play, finding the host
# unreachable after the run, leaves this file next to where the log would be (burst_fault_logs.yml).
LOST_SUFFIX = ".unreachable"
# A cluster that survives the loss of one broker: replication factor 3, min.insync.replicas 2 (the
# automq role's defaults for 3 Kafka brokers) and the gateway's acks=all.
NODE_LOSS_MIN_BROKERS = 3
# A gateway host lost while another one keeps serving its own devices (the lab: LAB_GATEWAYS=2).
HOST_LOSS_MIN_GATEWAYS = 2


def _argv(
    ev: FaultEvent,
    gateways: list[tuple[str, int]],
    services: dict[str, str],
    agent_python: str,
    agent_state_dir: str = "/var/lib/iot-simulator",
) -> list[str]:
    """The action and its arguments for ``ibp-fault`` (after RUN LABEL AT).

    A partition cuts the agent off every gateway; link-impair impairs the link to the first one.
    """
    gw_host, gw_port = gateways[0]
    if ev.action == "disk-full":
        return [ev.action, agent_state_dir, f"{ev.duration_s:g}", str(ev.max_fill_mb)]
    if ev.action in ("broker-restart", "broker-kill"):
        return [ev.action, services["broker"], f"{ev.down_s:g}"]
    if ev.action == "gateway-restart":
        return [ev.action, services["gateway"], ev.signal]
    if ev.action == "broker-node-loss":
        return ["node-loss"]
    if ev.action == "gateway-host-loss":
        return ["host-loss", services["gateway"], str(gw_port)]
    if ev.action == "partition":
        return [ev.action, ",".join(h for h, _ in gateways), f"{ev.duration_s:g}"]
    if ev.action == "link-impair":
        return [
            ev.action,
            agent_python,
            gw_host,
            str(gw_port),
            f"{ev.duration_s:g}",
            f"{ev.loss_percent:g}",
            f"{ev.delay_ms:g}",
            f"{ev.jitter_ms:g}",
            f"{ev.reorder_percent:g}",
        ]
    return [ev.action]


def plan(
    scn: Scenario,
    t0: float,
    groups: dict[str, list[str]],
    gateway: tuple[str, int] | list[tuple[str, int]],
    services: dict[str, str] | None = None,
    agent_python: str = "/opt/iot-simulator/venv/bin/python",
    agent_state_dir: str = "/var/lib/iot-simulator",
) -> list[dict[str, Any]]:
    """One entry per (fault, host): host, wall-clock time, parameters and the ``ibp-fault`` arguments.

    ``gateway``: the (host, port) the agents send to, or the list of them when there are several.
    """
    gateways = gateway if isinstance(gateway, list) else [gateway]
    services = {"broker": "automq", "gateway": "iot-gateway", **(services or {})}
    offset = flush_offset_s(scn)
    if scn.faults.events and offset is None:
        raise ScenarioError("faults.events: the scenario has no flush after timed phases")
    out = []
    for i, ev in enumerate(scn.faults.events):
        group = GROUP_OF[ev.action]
        hosts = groups.get(group) or []
        if ev.target >= len(hosts):
            raise ScenarioError(
                f"faults.events[{i}].target: {ev.target} names host #{ev.target} of group '{group}', "
                f"which has {len(hosts)} host(s) ({', '.join(hosts) or 'none'})"
            )
        if ev.action == "broker-node-loss" and len(hosts) < NODE_LOSS_MIN_BROKERS:
            raise ScenarioError(
                f"faults.events[{i}]: broker-node-loss needs a cluster of at least {NODE_LOSS_MIN_BROKERS} "
                f"brokers (replication factor 3, min.insync.replicas 2; the lab: LAB_BROKERS=3); this "
                f"inventory has {len(hosts)}, so losing one would lose the cluster"
            )
        if ev.action == "gateway-host-loss" and len(hosts) < HOST_LOSS_MIN_GATEWAYS:
            raise ScenarioError(
                f"faults.events[{i}]: gateway-host-loss needs at least {HOST_LOSS_MIN_GATEWAYS} gateways "
                f"(the lab: LAB_GATEWAYS=2), so that the other one keeps serving its devices; this "
                f"inventory has {len(hosts)}"
            )
        targets = list(enumerate(hosts)) if ev.target < 0 else [(ev.target, hosts[ev.target])]
        for index, host in targets:
            params = {k: getattr(ev, k) for k in ("at_s", *PARAMS[ev.action])}
            out.append(
                {
                    "label": ev.label,
                    "action": ev.action,
                    "group": group,
                    "index": index,
                    "host": host,
                    "planned_at": round(t0 + offset + ev.at_s, 3),
                    "params": params,
                    "argv": _argv(ev, gateways, services, agent_python, agent_state_dir),
                }
            )
    return out


def read_log(path: Path) -> list[dict[str, Any]]:
    """JSON lines; a torn last line (the host went down while writing) is skipped."""
    events = []
    if not path.exists():
        return events
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def collect(bundle: Path) -> list[dict[str, Any]]:
    """faults.json from the plan, the fetched logs (``faults/<host>/<label>.jsonl``) and the agents' results."""
    entries = json.loads((bundle / "faults-plan.json").read_text())
    restarts: dict[int, float] = {}
    for r in load_agent_results(bundle):
        for m in r.get("markers", []):
            if m.get("event") == "agent_restart":
                restarts.setdefault(int(r.get("agent_index", -1)), float(m["ts"]))
    out = []
    for e in entries:
        log_path = bundle / "faults" / e["host"] / f"{e['label']}.jsonl"
        log = read_log(log_path)
        lost = log_path.with_name(log_path.name + LOST_SUFFIX).exists()
        first = {}
        for ev in log:
            first.setdefault(ev.get("event"), ev)
        row = {k: e[k] for k in ("label", "action", "host", "index", "planned_at", "params")}
        row["log"] = log
        row["started_at"] = first[START]["ts"] if START in first else None
        row["ended_at"] = first[END]["ts"] if END in first else None
        if e["action"] == "agent-reboot" and row["ended_at"] is None and e["index"] in restarts:
            row["ended_at"] = restarts[e["index"]]  # the agent's own note that it resumed after the boot
            row["note"] = "ended = the agent resumed its run from disk after the boot"
        errors = [ev.get("detail", "error") for ev in log if ev.get("event") == "error"]
        if e["action"] == "broker-node-loss":
            if lost and not log:  # the expected outcome: the host and its log are gone
                row["started_at"] = e["planned_at"]
                row["lasts_to_end"] = True
                row["note"] = (
                    "host powered off for the rest of the run and unreachable after it; its log went "
                    "down with it, so the start is the planned time"
                )
            elif not lost:
                errors.append("the host still answered after the run: it was not lost")
            else:
                row["lasts_to_end"] = True
        elif not log:
            errors.append("no log from the host (the fault never ran?)")
        elif e["action"] == "gateway-host-loss":
            if START in first and END not in first:
                errors.append(
                    "the gateway host was reset but its gateway did not answer again after the boot"
                )
            else:
                row["note"] = (
                    "host reset (reboot(2), no clean shutdown); ended = its gateway listening again after the boot"
                )
        row["error"] = "; ".join(errors) or None
        method = next((ev.get("method") for ev in log if ev.get("method")), None)
        if method:
            row["note"] = f"impaired with {method}" + (f" ({row['note']})" if row.get("note") else "")
        if row["started_at"] is not None and row["ended_at"] is not None:
            row["lasted_s"] = round(row["ended_at"] - row["started_at"], 3)
            row["late_s"] = round(row["started_at"] - row["planned_at"], 3)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.faults", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="print the plan (JSON): one entry per fault and host")
    p.add_argument("--scenario", required=True)
    p.add_argument("--t0", type=float, required=True, help="T0 of the run (unix seconds)")
    p.add_argument(
        "--groups", required=True, help='JSON: {"brokers": [...], "gateways": [...], "agents": [...]}'
    )
    p.add_argument(
        "--gateway", required=True, help="host:port the agents send to (host:port,host:port,... for several)"
    )
    p.add_argument("--broker-service", default="automq")
    p.add_argument("--gateway-service", default="iot-gateway")
    p.add_argument("--agent-python", default="/opt/iot-simulator/venv/bin/python")
    p.add_argument(
        "--agent-state-dir", default="/var/lib/iot-simulator", help="disk-full fills its filesystem"
    )
    c = sub.add_parser("collect", help="write <bundle>/faults.json from the plan and the fetched logs")
    c.add_argument("--bundle", type=Path, required=True)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "plan":
            scn, _ = load(args.scenario)
            entries = plan(
                scn,
                args.t0,
                json.loads(args.groups),
                gateway_addresses(args.gateway),
                {"broker": args.broker_service, "gateway": args.gateway_service},
                args.agent_python,
                args.agent_state_dir,
            )
            print(json.dumps(entries))
        else:
            rows = collect(args.bundle)
            (args.bundle / "faults.json").write_text(json.dumps(rows, indent=1) + "\n")
            for r in rows:
                state = (
                    r["error"] or f"lasted {r.get('lasted_s')} s, {r.get('late_s')} s after its planned time"
                )
                print(f"fault {r['label']} on {r['host']}: {state}")
    except (ScenarioError, OSError, ValueError) as exc:
        print(f"simulator.faults {args.cmd}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
