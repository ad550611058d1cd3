"""The audit's verdicts: each SLO of the scenario, the run's own failures and the faults, passed or not.

One job: judge. Each verdict is ``{"slo", "pass", "reason"}``, the reason a sentence with the numbers
it judged; ``evaluate`` (auditor.py) lists them in audit.json and derives PASS or FAIL from them. Apart
so that what a run must meet reads in one place, away from how the figures are computed.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario import Slos


def run_verdicts(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run that stopped itself (its devices got no answer from the gateway) fails, saying why."""
    return [
        {"slo": "run_completed", "pass": False, "reason": f"agent {f['agent_index']}: {f['failure']}"}
        for f in failures
    ]


def slo_verdicts(a: dict[str, Any], slos: Slos, n_errors: int) -> list[dict[str, Any]]:
    out = []
    if slos.all_delivered:
        ok = a["missing"] == 0 and a["delivered"] > 0
        exp = a["expected"] if a["expected"] is not None else a["delivered"] + a["missing"]
        out.append(
            {
                "slo": "all_delivered",
                "pass": ok,
                "reason": f"{a['delivered']} of {exp} readings delivered, {a['missing']} missing"
                f" ({a['buffered_delivered']} of {a['buffered_expected']} buffered during the outage)",
            }
        )
    peak = a["peak_rate_during_flush"] if a["phases"]["flush_start"] else a["peak_rate"]
    out.append(
        {
            "slo": "min_peak_rate",
            "pass": peak >= slos.min_peak_rate,
            "reason": f"peak {peak} readings/s during the flush (need >= {slos.min_peak_rate:g})",
        }
    )
    rec = a["recovery_time_s"]
    if a["phases"]["flush_start"] and slos.check_recovery:
        out.append(
            {
                "slo": "recovery_within_s",
                "pass": rec is not None and rec <= slos.recovery_within_s,
                "reason": (
                    f"latency back to baseline {rec:.1f} s after the flush started (need <= {slos.recovery_within_s:g} s)"
                    if rec is not None
                    else "latency never came back to its pre-outage baseline (or no baseline measured)"
                ),
            }
        )
    out.append(
        {
            "slo": "max_errors",
            "pass": n_errors <= slos.max_errors,
            "reason": f"{n_errors} errors {a['errors']} (allowed {slos.max_errors})",
        }
    )
    return out


def fault_verdict(faults: list[dict[str, Any]]) -> dict[str, Any]:
    """A run with faults proves something only if every fault really happened: each logged its start and
    end (a host lost for the rest of the run has no end; its proof is that it was gone afterwards)."""
    bad = [
        f"{f.get('label')}: {f.get('error') or 'no start/end in its log'}"
        for f in faults
        if f.get("error")
        or f.get("started_at") is None
        or (f.get("ended_at") is None and not f.get("lasts_to_end"))
    ]
    done = len(faults) - len(bad)
    return {
        "slo": "faults_injected",
        "pass": not bad,
        "reason": f"{done} of {len(faults)} faults injected and ended"
        + (f" ({'; '.join(bad)})" if bad else ""),
    }
