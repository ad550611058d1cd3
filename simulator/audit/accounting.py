"""Accounting for a run's readings: what the agents expected against what Kafka holds.

One job: count. ``account`` gives every expected (device, sequence) of the agents' results as delivered
or missing (readings a device dropped on overflow are neither) and counts duplicates, unexpected
sequences and the buffered (outage-era) readings; ``attribute_duplicates`` gives each injected fault the
duplicates that landed in its window, with the reason such copies appear; ``phases_from`` and
``gateway_refusals`` gather the run's phase edges and the gateway's refusals from the agents' results.
Pure functions on the collected records and the results, apart from the Kafka consumer (collect.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from simulator.audit.expectations import Expectation

if TYPE_CHECKING:
    from simulator.audit.collect import Collected


def _marker(markers: list[dict], event: str, pick=min) -> float | None:
    ts = [m.get("at", m["ts"]) for m in markers if m["event"] == event]  # "at": the exact phase edge
    return pick(ts) if ts else None


def phases_from(agent_results: list[dict]) -> dict[str, float | None]:
    """Phase markers of the whole run (unix seconds) from every agent's markers."""
    markers = [m for r in agent_results for m in r.get("markers", [])]
    return {
        "run_start": _marker(markers, "run_start"),
        "outage_start": _marker(markers, "outage_start"),
        "flush_start": _marker(markers, "flush_start"),
        "drained": _marker(markers, "drained", max),
        "generation_stop": _marker(markers, "generation_stop", max),
        "run_end": _marker(markers, "run_end", max),
    }


def account(col: Collected, agent_results: list[dict]) -> dict[str, Any]:
    """Delivered / missing / duplicates / unexpected against the agents' expected sets."""
    expected: dict[str, Expectation] = {}
    for r in agent_results:
        for row in r.get("expected", []):
            e = Expectation.from_row(row)
            expected[e.device] = e
    delivered = missing = duplicates = unexpected = dropped = 0
    buffered_expected = buffered_delivered = 0
    missing_examples: list[str] = []
    duplicate_times_ms: list[int] = []  # when each later copy of a reading landed in Kafka
    for dev, e in expected.items():
        first, end, out_first, out_end, drops = e.first_seq, e.next_seq, e.outage_first, e.outage_end, e.drops
        dropped_set = {s for a, b in drops for s in range(a, b + 1)}
        dropped += len(dropped_set)
        got = sorted(zip(col.seqs.get(dev, ()), col.stamps.get(dev, ()), strict=True))
        uniq: list[int] = []
        for s, ts in got:
            if uniq and uniq[-1] == s:
                duplicates += 1
                duplicate_times_ms.append(ts)
            else:
                uniq.append(s)
        present = set(uniq)
        for s in uniq:
            if not first <= s < end or s in dropped_set:
                unexpected += 1
        want = [s for s in range(first, end) if s not in dropped_set]
        d = sum(1 for s in want if s in present)
        delivered += d
        if d < len(want):
            missing += len(want) - d
            if len(missing_examples) < 10:
                gone = [s for s in want if s not in present]
                missing_examples.append(f"{dev}: {len(gone)} missing, first {gone[:3]}")
        if out_first >= 0 and out_end > out_first:
            outage = [s for s in range(out_first, out_end) if s not in dropped_set]
            buffered_expected += len(outage)
            buffered_delivered += sum(1 for s in outage if s in present)
    for dev, seqs in col.seqs.items():
        if dev not in expected:
            unexpected += len(seqs)
    if not expected:  # no expectation: account against what arrived (first..last per device)
        for seqs in col.seqs.values():
            s = sorted(seqs)
            u = sorted(set(s))
            duplicates += len(s) - len(u)
            delivered += len(u)
            missing += (u[-1] - u[0] + 1) - len(u)
    return {
        "expected": sum(e.generated for e in expected.values()) - dropped if expected else None,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "unexpected": unexpected,
        "dropped_by_devices": dropped,
        "buffered_expected": buffered_expected,
        "buffered_delivered": buffered_delivered,
        "missing_examples": missing_examples,
        "duplicate_times_ms": sorted(duplicate_times_ms),
    }


# Why a fault can leave a second copy of a reading in Kafka (shown next to the duplicates it explains).
DUPLICATE_CAUSES = {
    "gateway-restart": (
        "readings Kafka had committed whose ACK died with the gateway process: the device retransmitted them "
        "and the new process, which starts without the device's high-water mark, produced them again"
    ),
    "broker-restart": (
        "produce requests the broker wrote but whose answer was lost when it stopped: the gateway reported a "
        "failure (no ACK), the device retransmitted, and the reading was produced again"
    ),
    "broker-kill": (
        "produce requests the killed broker had written (to its page cache or the log) whose answer never left "
        "it: the gateway saw a failure or a timeout (no ACK), the device retransmitted, the reading was produced again"
    ),
    "broker-node-loss": (
        "produce requests in flight to the lost broker whose answer never came: the gateway timed them out "
        "(no ACK), the device retransmitted, and the new leader on a surviving broker took the reading again"
    ),
    "gateway-host-loss": (
        "readings Kafka had committed whose ACK was lost with the gateway host (reset, no clean shutdown): their "
        "devices kept them, retransmitted when the gateway answered again after the boot, and it produced the "
        "ones its persisted high-water marks had not yet covered again"
    ),
    "disk-full": (
        "none expected: the run stops when its agent cannot journal, before it sends what it could not keep"
    ),
    "link-impair": (
        "ACKs lost or late on the impaired link make devices retransmit; the gateway answers a retransmission "
        "of a committed reading without producing it again, so copies here come from a gateway-side cause"
    ),
    "partition": (
        "ACKs cut off by the partition make devices retransmit; committed readings are acknowledged again "
        "without a second produce, so copies here come from a gateway-side cause"
    ),
    "agent-reboot": (
        "ACKs that arrived after the agent's last journal sync were lost with the host: the restored devices "
        "resend those readings and the gateway acknowledges them as replays (a second copy only if it restarted too)"
    ),
}
DUPLICATE_WINDOW_S = 30.0  # a fault explains copies that land from its start until this long after its end


def attribute_duplicates(faults: list[dict[str, Any]], duplicate_times_ms: list[int]) -> dict[str, Any]:
    """Give every fault the duplicates that landed in its window; the rest are unexplained."""
    explained = [0] * len(faults)
    unexplained = 0
    for ts in duplicate_times_ms:
        t = ts / 1000
        hit = None
        for i, f in enumerate(faults):
            start = f.get("started_at") or f.get("planned_at")
            end = float("inf") if f.get("lasts_to_end") else (f.get("ended_at") or start)
            if start is not None and start - 1 <= t <= end + DUPLICATE_WINDOW_S:
                hit = i
                break
        if hit is None:
            unexplained += 1
        else:
            explained[hit] += 1
    rows = []
    for f, n in zip(faults, explained, strict=True):
        rows.append(
            {
                **f,
                "duplicates": n,
                "duplicate_cause": DUPLICATE_CAUSES.get(f.get("action", ""), "") if n else "",
            }
        )
    return {"faults": rows, "unexplained_duplicates": unexplained}


def gateway_refusals(agent_results: list[dict]) -> dict[str, int]:
    """The gateway's refused datagrams by reason during the run, as the runs that read its /metrics saw them."""
    total: dict[str, int] = defaultdict(int)
    for r in agent_results:
        for reason, n in (r.get("gateway_refusals") or {}).items():
            total[reason] += int(n)
    return dict(total)
