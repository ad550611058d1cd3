"""Run a scenario's phases on a fleet and return the run's results (counters, samples, phases, expected).

Phases: ``normal`` (online), ``outage`` (network down; readings buffer), ``recovery`` (online again:
every device flushes; ``until: drained`` ends it once the outage backlog is acked, plus
``after_drained_s`` of normal traffic). After the last phase generation stops and the fleet drains
what is left (``final_drain_s``), so the auditor can expect every reading that was generated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from simulator.fleet import Fleet
from simulator.scenario import Scenario


def new_run_id(name: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{name}-{secrets.token_hex(3)}"


def _marker(markers: list[dict], name: str, **extra: Any) -> None:
    markers.append({"event": name, "ts": round(time.time(), 3), **extra})


async def run_phases(
    fleet: Fleet,
    scenario: Scenario,
    abort: asyncio.Event | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Drive the fleet through the scenario; returns the results dict (JSON-ready)."""
    abort = abort or asyncio.Event()
    markers: list[dict] = []
    edge = time.monotonic()  # the planned start of the current phase (timed edges do not drift)
    fleet.start_clock(edge)
    phases = scenario.phases
    fleet.schedule_online(phases[0].kind != "outage", edge)
    driver = asyncio.create_task(fleet.run())
    started = time.time()
    status = "completed"
    was_online = True
    try:
        _marker(markers, "run_start")
        for i, phase in enumerate(phases):
            if abort.is_set():
                status = "aborted"
                break
            if on_phase:
                on_phase(phase.name)
            online = phase.kind != "outage"
            at = round(fleet.wall(edge), 3)
            if was_online and not online:
                _marker(markers, "outage_start", phase=phase.name, at=at)
            elif online and not was_online:
                _marker(markers, "flush_start", phase=phase.name, at=at)
            was_online = online
            _marker(markers, "phase_start", phase=phase.name, kind=phase.kind, at=at)
            next_online = phases[i + 1].kind != "outage" if i + 1 < len(phases) else True
            if phase.until == "drained":
                deadline = time.monotonic() + phase.max_s
                while time.monotonic() < deadline and not abort.is_set():
                    if fleet.outage_backlog() == 0:
                        _marker(markers, "drained", phase=phase.name)
                        break
                    await _wait(abort, 0.2)
                else:
                    if not abort.is_set():
                        _marker(markers, "drain_timeout", phase=phase.name, backlog=fleet.outage_backlog())
                edge = time.monotonic() + phase.after_drained_s
            else:
                edge += phase.duration_s
            # the next edge is known now: the tick loop switches the network exactly there
            fleet.schedule_online(next_online, edge)
            await _wait(abort, edge - time.monotonic())
        if not was_online:
            _marker(markers, "flush_start", phase="final", at=round(fleet.wall(edge), 3))
        fleet._generate_due(edge, time.monotonic())  # readings due before the planned end still count
        fleet.generating = False
        _marker(markers, "generation_stop")
        deadline = time.monotonic() + scenario.final_drain_s
        while fleet.buffered > 0 and time.monotonic() < deadline and not abort.is_set():
            await _wait(abort, 0.2)
        _marker(markers, "run_end", buffered=fleet.buffered)
        if abort.is_set():
            status = "aborted"
    finally:
        fleet.stop()
        await driver
    return results(fleet, scenario, markers, started, status)


async def _wait(abort: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(abort.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        pass


def results(
    fleet: Fleet, scenario: Scenario, markers: list[dict], started: float, status: str
) -> dict[str, Any]:
    return {
        "run_id": fleet.run_id,
        "host": socket.gethostname(),
        "agent_index": fleet.agent_index,
        "agent_count": fleet.agent_count,
        "status": status,
        "started": round(started, 3),
        "finished": round(time.time(), 3),
        "devices": len(fleet.devices),
        "gateway": f"{fleet.host}:{fleet.port}",
        "protocol": scenario.transport.protocol,
        "counters": dataclasses.asdict(fleet.counters),
        "buffered_at_end": fleet.buffered,
        "max_tick_lag_ms": round(fleet.max_lag_ms, 1),
        "markers": markers,
        "samples": [dataclasses.asdict(s) for s in fleet.samples],
        "expected": fleet.expected(),
    }
