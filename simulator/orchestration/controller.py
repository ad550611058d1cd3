"""The controller: load every agent with its share of the fleet, arm all for one T0, follow, collect.

    python -m simulator controller --agents h1:7000,h2:7000 --token-file F --scenario S --gateway H:P

The agents' results land in ``reports/<run-id>/agents/``; with ``--bootstrap`` the run is audited too.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulator.orchestration import api, web
from simulator.orchestration.errors import ControllerError
from simulator.orchestration.session import effective_config
from simulator.report import bundle
from simulator.scenario import Scenario

# What a request to an agent can fail with: an error answer, a refused or cut connection, no answer.
AGENT_ERRORS = (web.HttpError, OSError, TimeoutError)


async def _all(agents: list[str], fn: Callable[[int, str], Any]) -> list[Any]:
    async def one(i: int, a: str) -> Any:
        try:
            return await fn(i, a)
        except AGENT_ERRORS as exc:
            raise ControllerError(f"agent {a}: {exc}") from None

    return await asyncio.gather(*(one(i, a) for i, a in enumerate(agents)))


async def measure_clock(
    agent: str, token: str, samples: int = 5, tls: ssl.SSLContext | None = None
) -> dict[str, float]:
    """The agent's clock minus the controller's, NTP style: the agent's "now" against the midpoint of
    the request's round trip, from the sample with the shortest round trip (least uncertainty)."""
    best: dict[str, float] | None = None
    for _ in range(samples):
        sent = time.time()
        status = await web.request(agent, "GET", "/status", token, wait_s=10, ssl_context=tls)
        received = time.time()
        rtt_ms = (received - sent) * 1000
        sample = {
            "offset_ms": round((float(status["now"]) - (sent + received) / 2) * 1000, 3),
            "uncertainty_ms": round(rtt_ms / 2, 3),
        }
        if best is None or sample["uncertainty_ms"] < best["uncertainty_ms"]:
            best = sample
    assert best is not None
    return best


async def _poll(
    agent: str,
    token: str,
    silent_since: dict[str, float],
    limit_s: float,
    tls: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """One agent's status; an agent that does not answer is "unreachable" until ``limit_s`` runs out."""
    try:
        status = await web.request(agent, "GET", "/status", token, wait_s=5, ssl_context=tls)
    except AGENT_ERRORS as exc:
        first = silent_since.setdefault(agent, time.time())
        if time.time() - first > limit_s:
            raise ControllerError(f"agent {agent}: no answer for {limit_s:g} s ({exc})") from None
        return {"state": "unreachable", "phase": "?"}
    silent_since.pop(agent, None)
    return status


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
    t0: float | None = None,
    unreachable_s: float = 300.0,
    tls: ssl.SSLContext | None = None,
) -> tuple[Path, list[dict]]:
    """Load, arm for one T0 (``t0``, or now + ``lead_s``), follow and collect; with ``tls`` (from
    simulator.orchestration.tls.client_context) every request goes over TLS to agents the inventory's CA signed.

    An agent that stops answering mid-run (its host rebooting: a fault of the scenario) is waited for
    up to ``unreachable_s``; the agent resumes its run from disk when it comes back (docs/faults.md).
    """
    n = len(agents)
    request = functools.partial(web.request, ssl_context=tls)
    await _all(
        agents,
        lambda i, a: request(
            a,
            "POST",
            "/scenario",
            token,
            api.LoadRequest(
                scenario=scenario_text, run_id=run_id, agent_index=i, agent_count=n, gateway=gateway
            ).model_dump(),
        ),
    )
    clocks = await _all(agents, lambda i, a: measure_clock(a, token, tls=tls))
    limit = scn.slos.max_clock_skew_ms
    for a, c in zip(agents, clocks, strict=True):
        progress(
            f"  {a}: clock {c['offset_ms']:+.1f} ms from the controller's (+/- {c['uncertainty_ms']:.1f} ms)"
        )
        if abs(c["offset_ms"]) - c["uncertainty_ms"] > limit:
            raise ControllerError(
                f"agent {a}: its clock is {c['offset_ms']:+.1f} ms (+/- {c['uncertainty_ms']:.1f} ms) from the "
                f"controller's; the scenario allows {limit:g} ms (slos.max_clock_skew_ms). Fix time sync on that host."
            )
    if t0 is None:
        t0 = round(time.time() + lead_s, 3)
    elif t0 < time.time() + 0.5:
        raise ControllerError(
            f"T0 {t0:.3f} is already past (or < 0.5 s away) before arming; give a later --t0 or a longer lead"
        )
    await _all(
        agents,
        lambda i, a: request(
            a,
            "POST",
            "/arm",
            token,
            api.ArmRequest(t0=t0, controller_offset_ms=clocks[i]["offset_ms"]).model_dump(),
        ),
    )
    progress(
        f"run {run_id}: {n} agents armed for T0={t0:.3f} ({time.strftime('%H:%M:%S', time.gmtime(t0))} UTC)"
    )
    deadline = t0 + scn.planned_s + scn.final_drain_s + 60
    silent_since: dict[str, float] = {}
    polled = time.time()
    try:
        while True:
            await asyncio.sleep(1.0)
            states = await asyncio.gather(
                *(_poll(a, token, silent_since, unreachable_s, tls) for a in agents)
            )
            gen = sum(s.get("generated", 0) for s in states)
            acked = sum(s.get("acked", 0) for s in states)
            buf = sum(s.get("buffered", 0) for s in states)
            phases = ",".join(sorted({str(s.get("phase")) for s in states}))
            away = [a for a, s in zip(agents, states, strict=True) if s["state"] == "unreachable"]
            progress(
                f"  [{phases}] generated {gen:,} acked {acked:,} buffered {buf:,}"
                + (f"  unreachable: {', '.join(away)}" if away else "")
            )
            bad = [f"{a}: {s['error']}" for a, s in zip(agents, states, strict=True) if s["state"] == "error"]
            if bad:
                raise ControllerError("agent failed: " + "; ".join(bad))
            if all(s["state"] in ("done", "aborted") for s in states):
                break
            if away:  # a rebooting agent resumes where it was: the time it was gone does not count
                deadline += time.time() - polled
            polled = time.time()
            if time.time() > deadline:
                raise ControllerError(
                    f"agents still running past the planned end: {[s['state'] for s in states]}"
                )
    except BaseException:
        await asyncio.gather(*(request(a, "POST", "/abort", token) for a in agents), return_exceptions=True)
        raise
    results = await _all(agents, lambda i, a: request(a, "GET", "/results", token, wait_s=60))
    out = bundle.bundle_dir(run_id, reports)
    config = effective_config(scn, run_id=run_id, gateway=gateway, agents=n, agent_addresses=agents, t0=t0)
    bundle.write_inputs(out, scenario_text, config, results)
    skews = [r.get("start_skew_ms") for r in results]
    progress(f"run {run_id}: collected {n} results; start skew vs T0 (ms): {skews}")
    return out, results
