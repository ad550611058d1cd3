"""What both impair methods share: the parameters, the error a user can fix, the stop flag, running
``tc``/``ip``/``iptables`` and finding the route's interface.

Its own module so that netem.py, nfqueue.py and cli.py depend on it and not on each other.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass


class ImpairError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass
class Params:
    dest: str
    dport: int | None
    proto: str | None  # "udp", "tcp" or None (all)
    loss: float
    delay_ms: float
    jitter_ms: float
    reorder: float
    duration: float
    queue_num: int
    queue_maxlen: int


def _run(args: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise ImpairError quoting its stderr."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=15)
    except FileNotFoundError as exc:
        raise ImpairError(f"{args[0]} not found ({what}): apt-get install iproute2 iptables") from exc
    if out.returncode != 0:
        raise ImpairError(f"{what} failed: {' '.join(args)}: {(out.stderr or out.stdout).strip()}")
    return out


def route_dev(dest: str) -> str:
    """The interface the route to dest uses; ImpairError when there is none."""
    try:
        out = subprocess.run(["ip", "-j", "route", "get", dest], capture_output=True, text=True, timeout=5)
    except FileNotFoundError as exc:
        raise ImpairError("ip not found: apt-get install iproute2") from exc
    if out.returncode != 0:
        raise ImpairError(
            f"destination {dest} is unroutable from this host ({out.stderr.strip()}); check --dest or add a route"
        )
    routes = json.loads(out.stdout or "[]")
    if not routes or "dev" not in routes[0] or routes[0].get("type") in ("unreachable", "blackhole"):
        raise ImpairError(f"destination {dest} is unroutable from this host; check --dest or add a route")
    return routes[0]["dev"]


class StopFlag:
    """Set by SIGTERM/SIGINT/SIGHUP; the loops poll it at least every 50 ms."""

    def __init__(self) -> None:
        self.set = False
        self.signal: str | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.set = True
        self.signal = signal.Signals(signum).name
