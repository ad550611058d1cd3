"""The simulator agent in the proof: a real ``python -m simulator agent`` runs a small burst through
the gateway (armed by the real controller), and is a scrape target when it serves ``/metrics``.

``metrics_access`` tells how the agent serves Prometheus metrics: "open" (no token), "token"
(Authorization: Bearer, like its control API) or None (no /metrics route yet).
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from pathlib import Path

from simulator.orchestration import controller
from simulator.orchestration.runner import new_run_id
from simulator.scenario import parse

# Small enough for a test: 60 devices, 2 s normal, 3 s outage, recovery until drained.
BURST = """\
name: monitoring-proof
devices: {count: 60}
transport: {sockets: 2, ack_timeout_ms: 800}
flush: {batch_size: 16, jitter_ms: 200}
phases:
  - {name: normal, kind: normal, duration_s: 2}
  - {name: outage, kind: outage, duration_s: 3}
  - {name: recovery, kind: recovery, until: drained, max_s: 30, after_drained_s: 3}
slos: {min_peak_rate: 1, recovery_within_s: 30}
final_drain_s: 20
"""


def _status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = resp.read().decode()
            return resp.status if "# TYPE" in body or "# HELP" in body else 404
    except urllib.error.HTTPError as err:
        return err.code


def metrics_access(address: str, token: str) -> str | None:
    url = f"http://{address}/metrics"
    if _status(url, None) == 200:
        return "open"
    if _status(url, token) == 200:
        return "token"
    return None


def run_burst(address: str, token: str, gateway_udp: str, reports: Path) -> list[dict]:
    """Arm the agent through the real controller and wait for the run's results."""
    scn = parse(BURST)
    _, results = asyncio.run(
        controller.run(
            [address],
            token,
            scn,
            BURST,
            gateway_udp,
            new_run_id("monitoring"),
            reports,
            lead_s=1.5,
            progress=lambda _: None,
        )
    )
    return results
