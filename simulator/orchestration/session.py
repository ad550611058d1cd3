"""One run in one process (scenario -> fleet -> bundle) and the audit of a bundle (bundle + Kafka -> verdict)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from simulator.audit import auditor, gateway_metrics
from simulator.devices.fleet import Fleet
from simulator.orchestration.runner import run_phases
from simulator.report import bundle
from simulator.scenario import Scenario

GATEWAY_FLUSH_S = 0.2  # gateway/metrics.py FLUSH_INTERVAL_S (the gateway's modules are not imported here)


def effective_config(scn: Scenario, **extra: Any) -> dict[str, Any]:
    return {"scenario": scn.to_dict(), **extra}


async def run_local(
    scn: Scenario,
    scenario_text: str,
    host: str,
    port: int,
    master_key: bytes | None,
    run_id: str,
    reports: Path,
    seed: int | None = None,
    metrics_url: str | None = None,
    progress: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Run the whole fleet in this process; write the bundle's inputs; return (bundle dir, results).

    ``metrics_url``: the gateway's /metrics. Its refusals name the cause when the run stalls, and those
    during the run go into the results (``gateway_refusals``), which the audit counts as errors.
    ``progress``: show the run's progress on stdout (simulator/devices/console.py ``follow``).
    """
    fleet = Fleet(scn, host, port, run_id, master_key, seed=seed)
    probe = gateway_metrics.prober(metrics_url) if metrics_url else None
    before = await probe() if probe else None
    stop = asyncio.Event()
    follower = None
    if progress:
        from simulator.devices.console import follow

        follower = asyncio.create_task(follow(fleet, scn, stop))
    await fleet.open()
    try:
        results = await run_phases(fleet, scn, refusals=probe)
    finally:
        fleet.close()
        stop.set()
        if follower is not None:
            await follower
    if probe is not None and before is not None:
        await asyncio.sleep(2 * GATEWAY_FLUSH_S)  # the workers publish their counters every 0.2 s
        results["gateway_refusals"] = gateway_metrics.rising(before, await probe())
    results["start_skew_ms"] = 0.0
    out = bundle.bundle_dir(run_id, reports)
    bundle.write_inputs(
        out,
        scenario_text,
        effective_config(scn, run_id=run_id, gateway=f"{host}:{port}", agents=1),
        [results],
    )
    return out, results


# The audit reads each partition from the first record stamped this long before the run started. The
# stamps come from the gateway's or the broker's clock, the run start from the agents'; the controller
# refuses agents beyond slos.max_clock_skew_ms, so ten minutes is far beyond any skew a run can have,
# while a topic's older history (earlier runs, days of retention) is not read again.
AUDIT_LOOKBACK_S = 600.0


async def audit_bundle(
    out: Path,
    bootstrap: str,
    topic: str,
    scn: Scenario | None = None,
    extra_errors: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Consume the run's records, evaluate, and write audit.json, phases.json, summary.txt, report.html."""
    import json

    from simulator.scenario import Slos, parse

    config = json.loads((out / "config.json").read_text())
    run_id = config["run_id"]
    text = (out / "scenario.yml").read_text()
    scn = scn or parse(text, str(out / "scenario.yml"))
    agents = bundle.load_agent_results(out)
    phases = auditor.phases_from(agents)
    flush_ms = int(phases["flush_start"] * 1000) if phases["flush_start"] else None
    outage_ms = int(phases["outage_start"] * 1000) if phases["outage_start"] else None
    since_ms = int((phases["run_start"] - AUDIT_LOOKBACK_S) * 1000) if phases["run_start"] else None
    col = await auditor.consume(bootstrap, topic, run_id, flush_ms, outage_ms, since_ms=since_ms)
    faults_file = out / "faults.json"
    faults = json.loads(faults_file.read_text()) if faults_file.exists() else None
    result = auditor.evaluate(col, agents, scn.slos if scn else Slos(), run_id, extra_errors, faults)
    result["kafka"] = {"bootstrap": bootstrap, "topic": topic}
    result["scenario"] = dataclasses.asdict(scn)["name"]
    bundle.write_audit(out, result, agents, text)
    return result
