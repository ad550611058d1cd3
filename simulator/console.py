"""The pilot's interactive simulator: `offline`, `online`, `status`, `quit`, and a live status line (rich)."""

from __future__ import annotations

import asyncio
import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from simulator.fleet import Fleet

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
