"""The gateway's refusals, read from its /metrics, and the words for a run they (or silence) stalled.

A datagram the gateway refuses gets no answer: the device cannot tell "refused" from "lost", so only the
gateway's counters say why (gateway/metrics.py: ``iot_invalid_datagrams_total{reason}`` and
``iot_datagrams_total{result="auth_failed"}``). A run that knows the gateway's metrics URL (``make demo``,
``python -m simulator run --gateway-metrics``) reads them to name a stall's cause and counts the
refusals during the run among its errors, so the ``max_errors`` SLO sees them.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.devices.fleet import Counters, Fleet
    from simulator.scenario import Scenario

INVALID = "iot_invalid_datagrams_total"
DATAGRAMS = "iot_datagrams_total"

# What each refusal means for a simulated device, and what to change.
HINTS = {
    "oversized": "datagrams over the gateway's max_datagram_bytes, dropped unanswered: set "
    "flush.max_datagram_bytes at or below the gateway's udp.max_datagram_bytes",
    "auth_failed": "the devices' keys are not the gateway's (fleet master key of the id prefix)",
    "malformed_json": "payloads that are not a JSON object",
    "seq_regression": "sequences far below what the gateway already committed for these devices",
    "legacy_disabled": "legacy datagrams, and the gateway has legacy formats turned off",
}


def parse_refusals(text: str) -> dict[str, int]:
    """Refused datagrams by reason from a Prometheus exposition (reasons never seen are left out)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == INVALID:
                reason = sample.labels.get("reason", "invalid")
            elif sample.name == DATAGRAMS and sample.labels.get("result") == "auth_failed":
                reason = "auth_failed"
            else:
                continue
            out[reason] = out.get(reason, 0) + int(sample.value)
    return out


def read_refusals(url: str, timeout_s: float = 5.0) -> dict[str, int]:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return parse_refusals(resp.read().decode())


def prober(url: str) -> Callable[[], Awaitable[dict[str, int] | None]]:
    """An async reader of ``url``'s refusals; None when the gateway's metrics cannot be read right now."""

    async def probe() -> dict[str, int] | None:
        try:
            return await asyncio.to_thread(read_refusals, url)
        except (OSError, ValueError):
            return None

    return probe


def rising(before: dict[str, int], after: dict[str, int] | None) -> dict[str, int]:
    """The reasons whose count grew, with how much."""
    if after is None:
        return {}
    return {r: n - before.get(r, 0) for r, n in sorted(after.items()) if n > before.get(r, 0)}


def error_counts(refused: dict[str, int]) -> dict[str, int]:
    """The run's errors from the gateway's refusals during the run (audit ``errors``: one key per reason)."""
    return {f"gateway_refused_{reason}": n for reason, n in sorted(refused.items()) if n}


def stall_reason(
    fleet: Fleet,
    scenario: Scenario,
    waited_s: float,
    devices: int,
    rising: dict[str, int],
    start: Counters,
    knows_gateway: bool,
) -> str:
    """Why the run stopped: how long which devices got no answer, and the likeliest cause."""
    c = fleet.counters
    head = (
        f"no ACK or BUSY from the gateway for {waited_s:.0f} s to {devices:,} device(s) that kept sending "
        f"({c.timeouts - start.timeouts:,} ack timeouts; largest datagram sent {c.max_datagram_bytes:,} bytes, "
        f"flush.max_datagram_bytes {scenario.flush.max_datagram_bytes:,})"
    )
    if rising:
        reasons = ", ".join(f"{r} +{n:,}" for r, n in rising.items())
        hints = "; ".join(f"{r}: {HINTS[r]}" for r in rising if r in HINTS)
        return f"{head} while the gateway's refused datagrams rose: {reasons}" + (
            f" ({hints})" if hints else ""
        )
    if c.send_errors > start.send_errors:
        return (
            f"{head}; {c.send_errors - start.send_errors:,} send errors (ICMP unreachable): nothing listens "
            f"on {fleet.host}:{fleet.port}"
        )
    if c.auth_fail > start.auth_fail:
        return f"{head}; {c.auth_fail - start.auth_fail:,} AUTH_FAIL answers: {HINTS['auth_failed']}"
    where = (
        "and its refusal counters did not rise: it is overloaded or unreachable"
        if knows_gateway
        else "check its iot_invalid_datagrams_total by reason: 'oversized' counts datagrams over its "
        "udp.max_datagram_bytes (4096 by default), dropped unanswered"
    )
    return f"{head}: the gateway refuses them or does not get them; {where}"
