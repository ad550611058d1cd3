"""The pilot's interactive simulator: `offline`, `online`, `status`, `quit`, and a live status line (rich);
and the progress of a scenario run (``make demo``): a live line on a terminal, a plain line every few
seconds otherwise, so a run that stalls shows it in a CI log instead of printing nothing for minutes."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from simulator.devices.fleet import Fleet
from simulator.scenario import Scenario

PROGRESS_EVERY_S = 5.0  # a plain progress line this often when the output is not a terminal
HELP = "commands: offline (network down, devices buffer) | online (flush) | status | quit"


class RateMeter:
    def __init__(self) -> None:
        self.last_t = time.monotonic()
        self.last_acked = 0
        self.rate = 0.0

    def update(self, acked: int) -> float:
        now = time.monotonic()
        if now - self.last_t >= 1.0:
            self.rate = (acked - self.last_acked) / (now - self.last_t)
            self.last_t, self.last_acked = now, acked
        return self.rate


def status_line(fleet: Fleet, rate: float) -> Text:
    c = fleet.counters
    net = "[green]ONLINE[/]" if fleet.online else "[red]OFFLINE[/]"
    extra = ""
    if c.send_errors or c.timeouts:
        extra = f" | timeouts {c.timeouts:,} send errors {c.send_errors:,}"
    return Text.from_markup(
        f"{net} | devices {len(fleet.devices):,} | sent {c.sent_readings:,} | acked {c.acked:,} | "
        f"buffered {fleet.buffered:,} | retransmits {c.retransmits:,} | busy {c.busy:,} | rate {rate:,.0f}/s{extra}"
    )


async def interactive(fleet: Fleet, duration_s: float, console: Console | None = None) -> None:
    """Run the fleet for ``duration_s`` (or until `quit`), reading commands from stdin."""
    console = console or Console()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_stdin() -> None:
        line = sys.stdin.readline()
        queue.put_nowait(line.strip().lower() if line else None)

    try:
        loop.add_reader(sys.stdin.fileno(), on_stdin)
        reading = True
    except (OSError, ValueError, NotImplementedError):
        reading = False
    driver = asyncio.create_task(fleet.run())
    meter = RateMeter()
    console.print(HELP)
    deadline = loop.time() + duration_s
    try:
        # auto_refresh=False: rich would refresh from a thread; this loop refreshes it every 0.25 s instead
        with Live(status_line(fleet, 0), console=console, auto_refresh=False, transient=False) as live:
            while loop.time() < deadline:
                try:
                    cmd = await asyncio.wait_for(queue.get(), timeout=0.25)
                except TimeoutError:
                    cmd = ""
                live.update(status_line(fleet, meter.update(fleet.counters.acked)), refresh=True)
                if cmd is None:  # stdin closed: keep running until the duration ends
                    if reading:
                        loop.remove_reader(sys.stdin.fileno())
                        reading = False
                    continue
                if cmd == "offline":
                    fleet.set_online(False)
                    live.console.print("network DOWN: devices buffer their readings")
                elif cmd == "online":
                    fleet.set_online(True)
                    live.console.print(f"network UP: {fleet.buffered:,} buffered readings flushing")
                elif cmd == "status":
                    c = fleet.counters
                    live.console.print(
                        f"generated {c.generated:,} datagrams {c.datagrams:,} acked {c.acked:,} buffered {fleet.buffered:,}"
                        f" retransmits {c.retransmits:,} timeouts {c.timeouts:,} busy {c.busy:,} auth_fail {c.auth_fail:,}"
                        f" dropped {c.dropped_overflow:,} tick lag max {fleet.max_lag_ms:.0f} ms"
                    )
                elif cmd in ("quit", "exit", "q"):
                    break
                elif cmd:
                    live.console.print(f"unknown command {cmd!r}; {HELP}")
    finally:
        if reading:
            loop.remove_reader(sys.stdin.fileno())
        fleet.stop()
        await driver


def phase_of(fleet: Fleet, scn: Scenario) -> str:
    """The phase running now, from the runner's plan (``fleet.run_state``)."""
    plan = fleet.run_state
    if not plan:
        return "starting"
    if plan.get("stage") == "final":
        return "final drain"
    i = plan.get("phase", 0)
    if not plan.get("entered") and i > 0:
        i -= 1  # the plan points at the next phase as soon as its edge is known
    return scn.phases[i].name if i < len(scn.phases) else "final drain"


def progress_text(fleet: Fleet, scn: Scenario, rate: float, started: float) -> str:
    c = fleet.counters
    return (
        f"  {time.monotonic() - started:6.0f} s [{phase_of(fleet, scn)}] generated {c.generated:,}"
        f" acked {c.acked:,} buffered {fleet.buffered:,} rate {rate:,.0f}/s datagrams {c.datagrams:,}"
        f" retransmits {c.retransmits:,} timeouts {c.timeouts:,} busy {c.busy:,}"
    )


async def follow(
    fleet: Fleet,
    scn: Scenario,
    stop: asyncio.Event,
    out: TextIO | None = None,
    every_s: float = PROGRESS_EVERY_S,
) -> None:
    """Show a run's progress until ``stop``: a live line on a terminal, else one plain line every ``every_s``."""
    out = out or sys.stdout
    meter = RateMeter()
    started = time.monotonic()
    if out.isatty():
        with Live(Text(""), console=Console(file=out), auto_refresh=False, transient=True) as live:
            while not stop.is_set():
                live.update(
                    Text(progress_text(fleet, scn, meter.update(fleet.counters.acked), started)), refresh=True
                )
                await _until(stop, 0.5)
        return
    while not stop.is_set():
        await _until(stop, every_s)
        if not stop.is_set():
            print(
                progress_text(fleet, scn, meter.update(fleet.counters.acked), started), file=out, flush=True
            )


async def _until(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
