"""Run a scenario's phases on a fleet and return the run's results (counters, samples, phases, expected).

Phases: ``normal`` (online), ``outage`` (network down; readings buffer), ``recovery`` (online again:
every device flushes; ``until: drained`` ends it once the outage backlog is acked, plus
``after_drained_s`` of normal traffic). After the last phase generation stops and the fleet drains
what is left (``final_drain_s``), so the auditor can expect every reading that was generated.

A run whose devices send without any answer from the gateway for ``transport.no_ack_fail_s`` stops at
once with status ``failed`` and a ``failure`` that says why (simulator/audit/gateway_metrics.py names the
gateway's refusals when its /metrics is known): retrying until ``max_s`` would prove nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from simulator.audit import gateway_metrics
from simulator.devices.fleet import Fleet
from simulator.scenario import Scenario, no_ack_limit_s

# With the gateway's refusals rising, a device this long without an answer is proof enough.
EVIDENCE_S = 10.0
WATCH_EVERY_S = 1.0

Refusals = Callable[[], Awaitable[dict[str, int] | None]]


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{name}-{secrets.token_hex(3)}"


def _marker(markers: list[dict], name: str, **extra: Any) -> None:
    markers.append({"event": name, "ts": round(time.time(), 3), **extra})


def new_plan(start: float) -> dict[str, Any]:
    """The progress of a run that starts at ``start`` (unix seconds) and has done nothing yet."""
    return {
        "started": start,
        "markers": [],
        "stage": "phases",  # then "final": generation stopped, the fleet drains what is left
        "phase": 0,
        "phase_start": start,  # wall time the current phase starts (its planned edge)
        "entered": False,  # its start markers are written
        "was_online": True,
        "deadline": None,  # a drained phase: wall time it gives up
        "end": None,  # a drained phase: wall time it ends (drained + after_drained_s)
        "final_deadline": None,
    }


async def run_phases(
    fleet: Fleet,
    scenario: Scenario,
    abort: asyncio.Event | None = None,
    on_phase: Callable[[str], None] | None = None,
    resume: dict[str, Any] | None = None,
    refusals: Refusals | None = None,
) -> dict[str, Any]:
    """Drive the fleet through the scenario; returns the results dict (JSON-ready).

    ``refusals``: reads the gateway's refused datagrams by reason (its /metrics), so that a run that
    stalls names why (see :func:`_watch`); without it the failure says what to look at.

    The run's progress lives in ``fleet.run_state`` (``plan`` below, in every snapshot of a fleet with a
    state store): the current phase, the wall-clock time it starts at, whether it was entered, a drained
    phase's deadline and end, and the markers. ``resume`` is such a plan from a snapshot (the agent
    restarted; the fleet was restored): the run continues where "now" is in the plan. Timed phases keep
    their planned edges, a drained phase its original deadline; edges passed while the host was down
    are crossed at once (the devices were off: they generated nothing meanwhile).
    """
    abort = abort or asyncio.Event()
    halt = asyncio.Event()  # aborted by the caller, or failed by the watchdog
    phases = scenario.phases
    now = time.monotonic()  # the planned start of the first phase (timed edges do not drift)
    fleet.start_clock(now)
    plan = new_plan(fleet.wall(now)) if resume is None else resume
    markers: list[dict] = plan["markers"]
    fleet.run_state = plan
    if plan["stage"] == "final":
        fleet.generating = False
        fleet.schedule_online(True, now)
    else:
        i = plan["phase"]
        online = phases[i].kind != "outage" if i < len(phases) else True
        fleet.schedule_online(online, max(fleet.mono(plan["phase_start"]), now))
        if on_phase and not plan["entered"] and i > 0:
            on_phase(phases[i - 1].name)  # resumed before phase i's edge: the one before is running
    driver = asyncio.create_task(fleet.run())
    # The tick loop failing (its state dir full: persist.StateDirFull) ends the run now, not at max_s;
    # ``await driver`` below raises its exception to the caller.
    driver.add_done_callback(lambda t: halt.set() if not t.cancelled() and t.exception() else None)
    helpers = [
        asyncio.create_task(_forward(abort, halt)),
        asyncio.create_task(_watch(fleet, scenario, plan, halt, refusals)),
    ]
    try:
        if not markers:
            _marker(markers, "run_start")
        if resume is not None:
            fleet.counters.agent_restarts += 1
            _marker(
                markers,
                "agent_restart",
                down_s=round(time.time() - (fleet.last_alive or time.time()), 3),
                restored_buffered=fleet.buffered,
            )
        fleet.checkpoint(wait=True)
        while plan["stage"] == "phases" and plan["phase"] < len(phases):
            i = plan["phase"]
            phase = phases[i]
            ahead = fleet.mono(plan["phase_start"]) - time.monotonic()
            if ahead > 0:  # resumed before this phase's edge
                await _wait(halt, ahead)
            if halt.is_set():
                break
            if on_phase:
                on_phase(phase.name)
            online = phase.kind != "outage"
            if not plan["entered"]:
                at = round(plan["phase_start"], 3)
                if plan["was_online"] and not online:
                    _marker(markers, "outage_start", phase=phase.name, at=at)
                elif online and not plan["was_online"]:
                    _marker(markers, "flush_start", phase=phase.name, at=at)
                _marker(markers, "phase_start", phase=phase.name, kind=phase.kind, at=at)
                plan.update(was_online=online, entered=True)
                if phase.until == "drained":
                    plan["deadline"] = time.time() + phase.max_s
                fleet.checkpoint()
            next_online = phases[i + 1].kind != "outage" if i + 1 < len(phases) else True
            if phase.until == "drained":
                if plan["end"] is None:
                    deadline = fleet.mono(plan["deadline"])
                    while time.monotonic() < deadline and not halt.is_set():
                        if fleet.outage_backlog() == 0:
                            _marker(markers, "drained", phase=phase.name)
                            break
                        await _wait(halt, 0.2)
                    else:
                        if not halt.is_set():
                            _marker(
                                markers, "drain_timeout", phase=phase.name, backlog=fleet.outage_backlog()
                            )
                    plan["end"] = time.time() + phase.after_drained_s
                    fleet.checkpoint()
                edge = fleet.mono(plan["end"])
            else:
                edge = fleet.mono(plan["phase_start"]) + phase.duration_s
            # the next edge is known now: the tick loop switches the network exactly there
            fleet.schedule_online(next_online, edge)
            plan.update(phase=i + 1, phase_start=fleet.wall(edge), entered=False, deadline=None, end=None)
            await _wait(halt, edge - time.monotonic())
        if plan["stage"] == "phases":
            edge = fleet.mono(plan["phase_start"])  # the planned end of the last phase reached
            if not plan["was_online"]:
                _marker(markers, "flush_start", phase="final", at=round(plan["phase_start"], 3))
            fleet._generate_due(edge, time.monotonic())  # readings due before the planned end still count
            fleet.generating = False
            _marker(markers, "generation_stop")
            plan.update(stage="final", final_deadline=time.time() + scenario.final_drain_s)
            fleet.checkpoint()
        deadline = fleet.mono(plan["final_deadline"])
        while fleet.buffered > 0 and time.monotonic() < deadline and not halt.is_set():
            await _wait(halt, 0.2)
        _marker(markers, "run_end", buffered=fleet.buffered)
    finally:
        for task in helpers:
            task.cancel()
        fleet.stop()
        await driver
    status = "failed" if plan.get("failure") else "aborted" if abort.is_set() else "completed"
    return results(fleet, scenario, markers, plan["started"], status, plan.get("failure"))


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        pass


async def _forward(abort: asyncio.Event, halt: asyncio.Event) -> None:
    await abort.wait()
    halt.set()


async def _watch(
    fleet: Fleet, scenario: Scenario, plan: dict[str, Any], halt: asyncio.Event, refusals: Refusals | None
) -> None:
    """Fail the run when a device keeps sending and the gateway never answers it.

    A datagram the gateway refuses (over its ``max_datagram_bytes``, a wrong key, a malformed payload) is
    dropped without an ACK, and its device retransmits the same bytes forever: the run would only end at
    ``max_s`` and look like a slow drain. The limit is ``transport.no_ack_fail_s`` (plus the scenario's
    fault windows); when the gateway's refusals are known and rising, :data:`EVIDENCE_S` is enough.
    """
    limit = no_ack_limit_s(scenario)
    evidence_s = min(limit, max(EVIDENCE_S, 2 * scenario.transport.ack_timeout_ms / 1000))
    before = await refusals() if refusals else None
    start = dataclasses.replace(fleet.counters)
    while not halt.is_set():
        await _wait(halt, WATCH_EVERY_S)
        now = time.monotonic()
        longest, over = fleet.unanswered(now, limit)
        rising: dict[str, int] = {}
        if refusals is not None and before is not None and longest > evidence_s:
            rising = gateway_metrics.rising(before, await refusals())
        if over or rising:
            waiting = over or fleet.unanswered(now, evidence_s)[1]
            plan["failure"] = gateway_metrics.stall_reason(
                fleet, scenario, longest, waiting, rising, start, refusals is not None
            )
            _marker(plan["markers"], "run_failed", reason=plan["failure"])
            halt.set()
            return


def results(
    fleet: Fleet,
    scenario: Scenario,
    markers: list[dict],
    started: float,
    status: str,
    failure: str | None = None,
) -> dict[str, Any]:
    return {
        "run_id": fleet.run_id,
        "host": socket.gethostname(),
        "agent_index": fleet.agent_index,
        "agent_count": fleet.agent_count,
        "status": status,
        "failure": failure,
        "started": round(started, 3),
        "finished": round(time.time(), 3),
        "devices": len(fleet.devices),
        "gateway": ",".join(f"{h}:{p}" for h, p in fleet.addresses),
        "protocol": scenario.transport.protocol,
        "send_path": fleet.send_path(),  # segmented (UDP GSO), sendmmsg or transport
        "counters": dataclasses.asdict(fleet.counters),
        "buffered_at_end": fleet.buffered,
        "max_tick_lag_ms": round(fleet.max_lag_ms, 1),
        "markers": markers,
        "samples": [dataclasses.asdict(s) for s in fleet.samples],
        "expected": fleet.expected(),
    }
