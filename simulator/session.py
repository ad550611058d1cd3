"""One run in one process (scenario -> fleet -> bundle) and the audit of a bundle (bundle + Kafka -> verdict)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from simulator import audit as auditor
from simulator import bundle
from simulator.fleet import Fleet
from simulator.runner import run_phases
from simulator.scenario import Scenario


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
) -> tuple[Path, dict[str, Any]]:
    """Run the whole fleet in this process; write the bundle's inputs; return (bundle dir, results)."""
    fleet = Fleet(scn, host, port, run_id, master_key, seed=seed)
    await fleet.open()
    try:
        results = await run_phases(fleet, scn)
    finally:
        fleet.close()
    results["start_skew_ms"] = 0.0
    out = bundle.bundle_dir(run_id, reports)
    bundle.write_inputs(
        out,
        scenario_text,
        effective_config(scn, run_id=run_id, gateway=f"{host}:{port}", agents=1),
        [results],
    )
    return out, results


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
    col = await auditor.consume(bootstrap, topic, run_id, flush_ms, outage_ms)
    faults_file = out / "faults.json"
    faults = json.loads(faults_file.read_text()) if faults_file.exists() else None
    result = auditor.evaluate(col, agents, scn.slos if scn else Slos(), run_id, extra_errors, faults)
    result["kafka"] = {"bootstrap": bootstrap, "topic": topic}
    result["scenario"] = dataclasses.asdict(scn)["name"]
    bundle.write_audit(out, result, agents, text)
    return result
