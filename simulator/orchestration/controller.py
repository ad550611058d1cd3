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
from typing import Any, TypeVar

from pydantic import ValidationError

from simulator.orchestration import api, web
from simulator.orchestration.errors import ControllerError
from simulator.orchestration.session import effective_config
from simulator.report import bundle
from simulator.scenario import Scenario

# What a request to an agent can fail with: an error answer, a refused or cut connection, no answer.
AGENT_ERRORS = (web.HttpError, OSError, TimeoutError)
DONE = frozenset({api.AgentState.DONE, api.AgentState.ABORTED})  # the poll stops when every agent is here
#: the CLI's exit code when an agent's run failed but every result was collected into the bundle
#: (burst.yml audits it then: a FAIL with its numbers); any other non-zero exit left no bundle
EXIT_RUN_FAILED = 3
STOP_WAIT_S = 60.0  # how long aborted agents get to stop and publish their results after one failed

A = TypeVar("A", bound=api.Answer)


def parse(model: type[A], agent: str, what: str, body: Any) -> A:
    """An agent's answer as its declared model. An answer that does not fit stops the run here, naming
    the agent, the request and each bad field, instead of a KeyError or a wrong sum later on."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ControllerError(
            f"agent {agent}: malformed answer to {what} ({model.__name__}): {api.describe(exc)}"
        ) from None


async def call(
    model: type[A],
    agent: str,
    method: str,
    path: str,
    token: str,
    body: Any = None,
    wait_s: float = 30,
    tls: ssl.SSLContext | None = None,
) -> A:
    """One request to an agent, its answer parsed into ``model`` (see :func:`parse`)."""
    got = await web.request(agent, method, path, token, body, wait_s=wait_s, ssl_context=tls)
    return parse(model, agent, f"{method} {path}", got)


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
        got = await web.request(agent, "GET", "/status", token, wait_s=10, ssl_context=tls)
        received = time.time()
        status = parse(api.Status, agent, "GET /status", got)  # after the clock is read: not in the rtt
        rtt_ms = (received - sent) * 1000
        sample = {
            "offset_ms": round((status.now - (sent + received) / 2) * 1000, 3),
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
) -> api.Status | None:
    """One agent's status; an agent that does not answer is unreachable (None) until ``limit_s`` runs
    out. One that answers something malformed is not waited for: ControllerError at once."""
    try:
        got = await web.request(agent, "GET", "/status", token, wait_s=5, ssl_context=tls)
    except AGENT_ERRORS as exc:
        first = silent_since.setdefault(agent, time.time())
        if time.time() - first > limit_s:
            raise ControllerError(f"agent {agent}: no answer for {limit_s:g} s ({exc})") from None
        return None
    silent_since.pop(agent, None)
    return parse(api.Status, agent, "GET /status", got)


async def _stop_all(agents: list[str], token: str, tls: ssl.SSLContext | None, failed: str) -> None:
    """One agent's run failed (its devices got no answer): abort the others and wait until each has stopped.

    Each then holds its results (the failed one with its ``failure``, the others ``aborted``), so the
    bundle and the audit still account for every reading sent: a failed run is a FAIL with its numbers,
    not a run without a bundle. An agent that failed without results (an exception, a full state dir)
    leaves nothing to collect: that stays a ControllerError naming it.
    """
    request = functools.partial(web.request, ssl_context=tls)
    await asyncio.gather(*(request(a, "POST", "/abort", token) for a in agents), return_exceptions=True)
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        states = await _all(agents, lambda i, a: call(api.Status, a, "GET", "/status", token, tls=tls))
        if all(s.state in DONE or s.state == api.AgentState.ERROR for s in states):
            return
        if time.monotonic() > deadline:
            raise ControllerError(
                f"agent failed: {failed}; and after {STOP_WAIT_S:g} s some agents had not stopped: "
                f"{[str(s.state) for s in states]}"
            )
        await asyncio.sleep(0.5)


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
    An agent whose run fails (no answer from the gateway) stops the others at once (:func:`_stop_all`);
    the bundle is written all the same, its results saying which agent failed and why.
    """
    n = len(agents)
    request = functools.partial(web.request, ssl_context=tls)
    await _all(
        agents,
        lambda i, a: call(
            api.Status,
            a,
            "POST",
            "/scenario",
            token,
            api.LoadRequest(
                scenario=scenario_text, run_id=run_id, agent_index=i, agent_count=n, gateway=gateway
            ).model_dump(),
            tls=tls,
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
        lambda i, a: call(
            api.Status,
            a,
            "POST",
            "/arm",
            token,
            api.ArmRequest(t0=t0, controller_offset_ms=clocks[i]["offset_ms"]).model_dump(),
            tls=tls,
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
            seen = [s for s in states if s is not None]
            gen = sum(s.generated or 0 for s in seen)
            acked = sum(s.acked or 0 for s in seen)
            buf = sum(s.buffered or 0 for s in seen)
            phases = ",".join(sorted({str(s.phase) if s is not None else "?" for s in states}))
            away = [a for a, s in zip(agents, states, strict=True) if s is None]
            progress(
                f"  [{phases}] generated {gen:,} acked {acked:,} buffered {buf:,}"
                + (f"  unreachable: {', '.join(away)}" if away else "")
            )
            bad = [
                f"{a}: {s.error}"
                for a, s in zip(agents, states, strict=True)
                if s is not None and s.state == api.AgentState.ERROR
            ]
            if bad:
                failed = "; ".join(bad)
                progress(f"run {run_id}: agent failed: {failed}; stopping the others to collect every result")
                await _stop_all(agents, token, tls, failed)
                break
            if all(s is not None and s.state in DONE for s in states):
                break
            if away:  # a rebooting agent resumes where it was: the time it was gone does not count
                deadline += time.time() - polled
            polled = time.time()
            if time.time() > deadline:
                raise ControllerError(
                    "agents still running past the planned end: "
                    f"{[str(s.state) if s is not None else 'unreachable' for s in states]}"
                )
    except BaseException:
        await asyncio.gather(*(request(a, "POST", "/abort", token) for a in agents), return_exceptions=True)
        raise
    collected: list[api.AgentResults] = await _all(
        agents, lambda i, a: call(api.AgentResults, a, "GET", "/results", token, wait_s=60, tls=tls)
    )
    out = bundle.bundle_dir(run_id, reports)
    config = effective_config(scn, run_id=run_id, gateway=gateway, agents=n, agent_addresses=agents, t0=t0)
    # the bundle and the audit take the results as the JSON the agents sent (wire(): same keys, order, values)
    results = [r.wire() for r in collected]
    bundle.write_inputs(out, scenario_text, config, results)
    skews = [r.start_skew_ms for r in collected]
    progress(f"run {run_id}: collected {n} results; start skew vs T0 (ms): {skews}")
    return out, results
