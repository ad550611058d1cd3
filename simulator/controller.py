"""The controller: load every agent with its share of the fleet, arm all for one T0, follow, collect.

    python -m simulator controller --agents h1:7000,h2:7000 --token-file F --scenario S --gateway H:P

The agents' results land in ``reports/<run-id>/agents/``; with ``--bootstrap`` the run is audited too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator import bundle, httpapi
from simulator.errors import ControllerError
from simulator.scenario import Scenario
from simulator.session import effective_config


async def _all(agents: list[str], fn: Callable[[int, str], Any]) -> list[Any]:
    async def one(i: int, a: str) -> Any:
        try:
            return await fn(i, a)
        except (httpapi.HttpError, OSError, TimeoutError) as exc:
            raise ControllerError(f"agent {a}: {exc}") from None

    return await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))


async def run(
    agents: list[str],
    token: str,
    scn: Scenario,
    scenario_text: str,
    gateway: str,
    run_id: str,
    reports: Path,
    lead_s: float = 3.0,
    progress: Callable[[str], None] = print,
) -> tuple[Path, list[dict]]:
    n = len(agents)
    await _all(
        agents,
        lambda i, a: httpapi.request(
            a,
            "POST",
            "/scenario",
            token,
            {
                "scenario": scenario_text,
                "run_id": run_id,
                "agent_index": i,
                "agent_count": n,
                "gateway": gateway,
            },
        ),
    )
    t0 = round(time.time() + lead_s, 3)
    await _all(agents, lambda i, a: httpapi.request(a, "POST", "/arm", token, {"t0": t0}))
    progress(
        f"run {run_id}: {n} agents armed for T0={t0:.3f} ({time.strftime('%H:%M:%S', time.gmtime(t0))} UTC)"
    )
    deadline = t0 + scn.planned_s + scn.final_drain_s + 60
    try:
        while True:
            await asyncio.sleep(1.0)
            states = await _all(agents, lambda i, a: httpapi.request(a, "GET", "/status", token, wait_s=10))
            gen = sum(s.get("generated", 0) for s in states)
            acked = sum(s.get("acked", 0) for s in states)
            buf = sum(s.get("buffered", 0) for s in states)
            phases = ",".join(sorted({str(s.get("phase")) for s in states}))
            progress(f"  [{phases}] generated {gen:,} acked {acked:,} buffered {buf:,}")
            bad = [f"{a}: {s['error']}" for a, s in zip(agents, states, strict=True) if s["state"] == "error"]
            if bad:
                raise ControllerError("agent failed: " + "; ".join(bad))
            if all(s["state"] in ("done", "aborted") for s in states):
                break
            if time.time() > deadline:
                raise ControllerError(
                    f"agents still running past the planned end: {[s['state'] for s in states]}"
                )
    except BaseException:
        await asyncio.gather(
            *(httpapi.request(a, "POST", "/abort", token) for a in agents), return_exceptions=True
        )
        raise
    results = await _all(agents, lambda i, a: httpapi.request(a, "GET", "/results", token, wait_s=60))
    out = bundle.bundle_dir(run_id, reports)
    config = effective_config(scn, run_id=run_id, gateway=gateway, agents=n, agent_addresses=agents, t0=t0)
    bundle.write_inputs(out, scenario_text, config, results)
    skews = [r.get("start_skew_ms") for r in results]
    progress(f"run {run_id}: collected {n} results; start skew vs T0 (ms): {skews}")
    return out, results
