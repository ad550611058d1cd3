"""``make soak`` / ``python -m simulator soak``: the one-machine stack for an hour, an outage every few minutes.

Why: the burst tests run for minutes; a leak in the gateway, the simulator or the broker (memory, file
descriptors) only shows over many outage cycles. This starts the same stack as ``make demo`` (a local
broker, the real gateway via harness.gateway) once, then runs one ordinary run per cycle (steady
baseline, an outage, the flush; simulator.orchestration.session.run_local and audit_bundle, so each cycle has its own
bundle under ``<report>/runs/<run-id>/`` and its audit from the real auditor) until the duration is
spent. A sampler thread reads /proc every ``sample_s``: RSS (VmRSS) and open fds of the gateway's
process group (supervisor + workers, summed), of this process (the fleet runs here) and of the broker
JVM; each cycle boundary (after its audit) is sampled too, for the fd check. harness/trend.py decides
whether a series is a leak or noise.

The report goes to ``reports/soak-<timestamp>/``: soak.json (samples, per-cycle audits, verdict),
soak.png (RSS and fds per process over time, outages shaded; missing per cycle), summary.txt,
soak.html. Ctrl-C or SIGTERM stop the soak: the cycle in flight is dropped (its run never finished, so
it has no audit) and the report of the cycles that ran is written; the gateway and broker are stopped.
"""

from __future__ import annotations

import html
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.procfs import Ticker, group_pids, rss_and_fds
from harness.stack import Stack
from harness.trend import Limits, fd_verdict, memory_verdict

ROLES = ("gateway", "simulator", "broker")


@dataclass
class SoakConfig:
    duration_s: float = 3600.0
    cycle_s: float = 180.0
    outage_s: float = 30.0
    devices: int = 300
    rate_hz: float = 1.0
    sample_s: float = 5.0
    progress_s: float = 10.0
    gateway_workers: int = 2
    limits: Limits = field(default_factory=Limits)


def cycle_scenario(cfg: SoakConfig, n: int) -> str:
    """Scenario text of cycle ``n``: baseline for the rest of the cycle, the outage, the flush until drained."""
    recovery_s = min(20.0, cfg.cycle_s / 4)
    doc = {
        "name": f"soak-c{n}",
        "description": f"soak cycle {n}: {cfg.devices} devices at {cfg.rate_hz:g}/s, {cfg.outage_s:g} s outage",
        "devices": {"count": cfg.devices},
        "reading": {"rate_hz": cfg.rate_hz},
        "transport": {"sockets": 8, "ack_timeout_ms": 800},
        "flush": {"batch_size": 16, "jitter_ms": 300},
        "phases": [
            {
                "name": "normal",
                "kind": "normal",
                "duration_s": max(1.0, cfg.cycle_s - cfg.outage_s - recovery_s),
            },
            {"name": "outage", "kind": "outage", "duration_s": cfg.outage_s},
            {
                "name": "recovery",
                "kind": "recovery",
                "until": "drained",
                "max_s": max(60.0, 2 * cfg.outage_s),
                "after_drained_s": 5,
            },
        ],
        # The soak fails on missing readings and leaks; the burst SLOs are recorded, not the soak's verdict.
        "slos": {"all_delivered": True, "min_peak_rate": 1, "recovery_within_s": 30, "max_errors": 0},
        "final_drain_s": 30,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def probe(pids: dict[str, list[int]]) -> dict[str, dict[str, Any]]:
    """RSS and fds per role, summed over its processes (the gateway's supervisor and workers)."""
    out: dict[str, dict[str, Any]] = {}
    for role, group in pids.items():
        rss, fds, alive = 0.0, 0, []
        for pid in group:
            st = rss_and_fds(pid)
            if st is not None:
                rss, fds = rss + st[0], fds + st[1]
                alive.append(pid)
        out[role] = {"rss_mb": round(rss, 2), "fds": fds, "pids": alive}
    return out


class Sampler(Ticker):
    """Samples every ``every`` s (a daemon thread) and prints a progress line every ``progress_s`` s."""

    def __init__(self, pids: Any, every: float, progress_s: float, t0: float, status: Any) -> None:
        super().__init__(every, "soak-sampler")
        self.pids, self.progress_s, self.t0, self.status = pids, progress_s, t0, status
        self.samples: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_print = 0.0
        self.tty = sys.stdout.isatty()

    def sample(self, boundary: int | None = None) -> dict[str, Any]:
        s = {"t": round(time.monotonic() - self.t0, 2), "ts": round(time.time(), 3), **probe(self.pids())}
        if boundary is not None:
            s["boundary"] = boundary
        with self._lock:
            self.samples.append(s)
        return s

    def tick(self) -> None:
        s = self.sample()
        if s["t"] - self._last_print >= self.progress_s:
            self._last_print = s["t"]
            line = f"soak: {s['t']:6.0f} s {self.status()} " + "  ".join(
                f"{r} {s[r]['rss_mb']:.0f} MB/{s[r]['fds']} fds" for r in ROLES
            )
            print(("\r" + line + "\033[K") if self.tty else line, end="" if self.tty else "\n", flush=True)


def verdict(samples: list[dict[str, Any]], cycles: list[dict[str, Any]], limits: Limits) -> dict[str, Any]:
    """PASS only with at least one audited cycle, 0 missing in every one, and no memory or fd leak."""
    reasons: list[str] = []
    notes: list[str] = []
    memory, fds = {}, {}
    for role in ROLES:
        t = [s["t"] for s in samples if s[role]["pids"]]
        mb = [s[role]["rss_mb"] for s in samples if s[role]["pids"]]
        memory[role] = memory_verdict(t, mb, limits)
        # boundary 0 (before the first cycle) is not the baseline: the first run imports and opens what
        # every later one reuses (the event loop, Kafka client modules); the end of cycle 1 is.
        fds[role] = fd_verdict([s[role]["fds"] for s in samples if s.get("boundary", 0) >= 1], limits)
        for kind, v in (("memory", memory[role]), ("fds", fds[role])):
            if not v["ok"]:
                reasons.append(f"{role} {kind}: {v['note']}")
            elif not v["judged"]:
                notes.append(f"{role} {kind}: {v['note']}")
    if not cycles:
        reasons.append("no cycle completed")
    for c in cycles:
        if c["missing"]:
            reasons.append(f"cycle {c['cycle']}: {c['missing']:,} missing")
        if c["run_status"] != "completed":
            reasons.append(
                f"cycle {c['cycle']}: run {c['run_status']}: {c.get('failure') or ''}".rstrip(": ")
            )
        if c["verdict"] != "PASS":
            notes.append(f"cycle {c['cycle']}: audit {c['verdict']} ({', '.join(c['failed_slos'])})")
    return {
        "verdict": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "notes": notes,
        "memory": memory,
        "fds": fds,
    }


def summary(doc: dict[str, Any]) -> str:
    v, cycles = doc["verdict"], doc["cycles"]
    lines = [
        f"Soak {doc['id']}: {v['verdict']}{' (interrupted)' if doc['interrupted'] else ''}",
        f"  ran {doc['wall_s']:.0f} s of {doc['config']['duration_s']:.0f} s; {len(cycles)} cycles of "
        f"{doc['config']['cycle_s']:g} s with a {doc['config']['outage_s']:g} s outage, "
        f"{doc['config']['devices']:,} devices at {doc['config']['rate_hz']:g}/s; {len(doc['samples'])} samples",
        f"  delivered {sum(c['delivered'] for c in cycles):,}   missing {sum(c['missing'] for c in cycles):,}   "
        f"duplicates {sum(c['duplicates'] for c in cycles):,}   buffered during outages "
        f"{sum(c['buffered_delivered'] for c in cycles):,} of {sum(c['buffered_expected'] for c in cycles):,} delivered",
        f"  load average at start {doc['load_start']}, at end {doc['load_end']}",
    ]
    for role in ROLES:
        m, f = v["memory"][role], v["fds"][role]
        lines.append(
            f"  {role:<9} RSS {m['start_mb']} -> {m['end_mb']} MB (max {m['max_mb']}); "
            f"fds at cycle ends {f['boundaries'][:1]}..{f['boundaries'][-1:]}"
        )
        lines.append(f"            memory: {m.get('note', '')}; fds: {f.get('note', '')}")
    lines += [f"  FAIL: {r}" for r in v["reasons"]] + [f"  note: {n}" for n in v["notes"]]
    lines.append("")
    lines.append(
        f"{'cycle':>5} {'verdict':>7} {'delivered':>10} {'missing':>7} {'dups':>5} {'buffered':>9} {'audit s':>7}"
    )
    for c in cycles:
        lines.append(
            f"{c['cycle']:>5} {c['verdict']:>7} {c['delivered']:>10,} {c['missing']:>7,} {c['duplicates']:>5,} "
            f"{c['buffered_expected']:>9,} {c['audit_s']:>7.1f}"
        )
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, cycles = doc["samples"], doc["cycles"]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    t0 = doc["started"]
    for ax, key, label in ((axes[0][0], "rss_mb", "RSS MB"), (axes[0][1], "fds", "open fds")):
        for role in ROLES:
            pts = [(s["t"] / 60, s[role][key]) for s in samples if s[role]["pids"]]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=role)
        for c in cycles:
            if c.get("outage_start") and c.get("flush_start"):
                ax.axvspan(
                    (c["outage_start"] - t0) / 60, (c["flush_start"] - t0) / 60, color="grey", alpha=0.15
                )
        ax.set_xlabel("minutes (outages shaded)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    ax = axes[1][0]
    rss = [(s["t"] / 60, s["gateway"]["rss_mb"]) for s in samples if s["gateway"]["pids"]]
    if rss:
        ax.plot(*zip(*rss, strict=True), color="C0")
    ax.set_title("gateway RSS MB (own scale)", fontsize=9)
    ax.set_xlabel("minutes")
    ax.grid(alpha=0.3)
    ax = axes[1][1]
    xs = [c["cycle"] for c in cycles]
    ax.bar(xs, [c["missing"] for c in cycles], color=["red" if c["missing"] else "green" for c in cycles])
    ax.set_ylim(bottom=0, top=max([1] + [c["missing"] for c in cycles]) * 1.2)
    ax.set_xlabel("cycle")
    ax.set_ylabel("missing readings")
    ax.set_title("missing per cycle (audit)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.suptitle(f"soak {doc['id']}: {doc['verdict']['verdict']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(doc: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(doc, indent=1) + "\n")
    text = summary(doc)
    (out / "summary.txt").write_text(text)
    plot(doc, out / "soak.png")
    (out / "soak.html").write_text(
        "<!doctype html><meta charset=utf-8><title>soak</title>"
        f"<h1>Soak {html.escape(doc['id'])}</h1><pre style='white-space:pre-wrap'>{html.escape(text)}</pre>"
        "<img src='soak.png' style='max-width:100%'>"
    )
    return out


def _cycle_record(
    n: int, out: Path, res: dict[str, Any], audit: dict[str, Any], audit_s: float
) -> dict[str, Any]:
    marks = {m["event"]: m.get("at", m["ts"]) for m in res.get("markers", [])}
    return {
        "cycle": n,
        "run_id": res["run_id"],
        "bundle": str(out),
        "run_status": res["status"],
        "failure": res.get("failure"),
        "verdict": audit["verdict"],
        "failed_slos": [x["slo"] for x in audit.get("slos", []) if not x.get("pass")],
        "delivered": int(audit.get("delivered") or 0),
        "missing": int(audit.get("missing") or 0),
        "duplicates": int(audit.get("duplicates") or 0),
        "buffered_expected": int(audit.get("buffered_expected") or 0),
        "buffered_delivered": int(audit.get("buffered_delivered") or 0),
        "drain_time_s": audit.get("drain_time_s"),
        "outage_start": marks.get("outage_start"),
        "flush_start": marks.get("flush_start"),
        "started": res.get("started"),
        "finished": res.get("finished"),
        "audit_s": round(audit_s, 1),
    }


def main(cfg: SoakConfig, reports: Path) -> int:
    """Run the soak; 0 PASS, 1 FAIL, 130 interrupted (the report of what ran is written in every case)."""
    from simulator.orchestration.runner import new_run_id
    from simulator.scenario import parse

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = reports / f"soak-{stamp}"
    stack = Stack("soak", cfg.gateway_workers)
    cycles: list[dict[str, Any]] = []
    state = {"cycle": 0, "phase": "starting"}
    interrupted = False
    started = time.time()
    t0 = time.monotonic()
    load_start = [round(x, 2) for x in os.getloadavg()]

    def pids() -> dict[str, list[int]]:
        return {
            "gateway": group_pids(stack.gw.process.pid) if stack.gw is not None else [],
            "simulator": [os.getpid()],
            "broker": [stack.broker.process.pid] if stack.broker.process is not None else [],
        }

    sampler = Sampler(
        pids, cfg.sample_s, cfg.progress_s, t0, lambda: f"cycle {state['cycle']} {state['phase']}"
    )

    def auditing(_bundle: Path, _results: dict[str, Any]) -> None:
        state["phase"] = "auditing"

    print(
        f"soak: {cfg.duration_s:.0f} s, a {cfg.outage_s:g} s outage every {cfg.cycle_s:g} s, "
        f"{cfg.devices:,} devices at {cfg.rate_hz:g}/s, sampled every {cfg.sample_s:g} s -> {out}",
        flush=True,
    )
    try:
        with stack, sampler:
            sampler.sample(boundary=0)
            n, est = 0, cfg.cycle_s
            # A cycle starts while at least 3/4 of one (the last one's wall time, audit included) fits in
            # what is left, so the soak ends within a quarter cycle of its duration; one always runs.
            while n == 0 or cfg.duration_s - (time.monotonic() - t0) >= 0.75 * est:
                c0 = time.monotonic()
                n += 1
                state.update(cycle=n, phase="running")
                text = cycle_scenario(cfg, n)
                scn = parse(text, f"<soak cycle {n}>")
                run = stack.audited_run(scn, text, new_run_id(scn.name), out / "runs", between=auditing)
                cycles.append(_cycle_record(n, run.bundle, run.results, run.audit, run.audit_s))
                est = time.monotonic() - c0
                s = sampler.sample(boundary=n)
                c = cycles[-1]
                print(
                    ("\n" if sampler.tty else "")
                    + f"soak: cycle {n} {c['verdict']}: delivered {c['delivered']:,} missing {c['missing']:,} "
                    f"duplicates {c['duplicates']:,} buffered {c['buffered_delivered']:,}/{c['buffered_expected']:,} "
                    f"(audit {c['audit_s']:.1f} s) at {s['t']:.0f} s; "
                    + "  ".join(f"{r} {s[r]['rss_mb']:.0f} MB/{s[r]['fds']} fds" for r in ROLES),
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
        print(
            f"\nsoak: interrupted in cycle {state['cycle']}; writing the report of {len(cycles)} cycles",
            flush=True,
        )
    samples = list(sampler.samples)
    doc = {
        "id": out.name,
        "started": round(started, 3),
        "wall_s": round(time.monotonic() - t0, 1),
        "interrupted": interrupted,
        "config": {**asdict(cfg), "limits": asdict(cfg.limits)},
        "load_start": load_start,
        "load_end": [round(x, 2) for x in os.getloadavg()],
        "cycles": cycles,
        "samples": samples,
        "verdict": verdict(samples, cycles, cfg.limits),
    }
    write_report(doc, out)
    print(summary(doc), end="")
    print(f"soak: report {(out / 'soak.html').resolve()}", flush=True)
    if interrupted:
        return 130
    return 0 if doc["verdict"]["verdict"] == "PASS" else 1
