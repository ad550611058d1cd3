"""``python -m simulator limit``: the real runner (one-machine stack) and the limit report.

The broker and the gateway start once for the whole search (sequences never repeat across runs and the
audit skips other runs' records); each step is an ordinary run with its own ``reports/<run-id>/``
bundle. The report goes to ``reports/limit-<timestamp>/``: limit.json, limit.png, summary.txt, limit.html.
"""

from __future__ import annotations

import dataclasses
import html
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from harness.limit_playbook import PlaybookRunner, StepError
from harness.procfs import Ticker, cpu_seconds, group_pids
from harness.stack import Stack
from simulator.orchestration.limit import VARY, SearchResult, StepResult, search
from simulator.scenario import Scenario


def vary(scn: Scenario, what: str, size: float) -> Scenario:
    """The scenario with ``what`` set to ``size`` and its name tagged with the size."""
    tag = f"{what.replace('_', '')}{int(size) if float(size).is_integer() else size}"
    if what == "devices":
        return dataclasses.replace(
            scn, name=f"{scn.name}-{tag}", devices=dataclasses.replace(scn.devices, count=int(size))
        )
    if what == "rate_hz":
        return dataclasses.replace(
            scn, name=f"{scn.name}-{tag}", reading=dataclasses.replace(scn.reading, rate_hz=float(size))
        )
    if what == "outage_s":
        phases = [
            dataclasses.replace(p, duration_s=float(size)) if p.kind == "outage" else p for p in scn.phases
        ]
        return dataclasses.replace(scn, name=f"{scn.name}-{tag}", phases=phases)
    raise ValueError(f"--vary must be one of {VARY}, got {what!r}")


class _CpuSampler(Ticker):
    """Highest 1-s CPU share of a process group (the gateway supervisor and its workers), from /proc."""

    def __init__(self, pgid: int, cores: int) -> None:
        super().__init__(1.0, "limit-cpu")
        self.pgid, self.cores, self.peak = pgid, max(1, cores), 0.0
        self._last, self._t = cpu_seconds(group_pids(pgid)), time.monotonic()

    def tick(self) -> None:
        now, tn = cpu_seconds(group_pids(self.pgid)), time.monotonic()
        self.peak = max(self.peak, (now - self._last) / max(tn - self._t, 1e-3) / self.cores)
        self._last, self._t = now, tn


class LocalRunner:
    """Runs each step against one local broker + gateway (started on enter, stopped on exit)."""

    def __init__(
        self, scn: Scenario, what: str, reports: Path, workers: int = 2, scenario_path: str = ""
    ) -> None:
        self.scn, self.what, self.reports, self.workers = scn, what, reports, workers
        self.scenario_path = scenario_path

    def __enter__(self) -> LocalRunner:
        self.stack = Stack("limit", self.workers).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stack.__exit__(*exc)

    def run(self, size: float) -> StepResult:
        from simulator.orchestration.runner import new_run_id

        scn = vary(self.scn, self.what, size)
        text = yaml.safe_dump(scn.to_dict(), sort_keys=False)
        t0 = time.monotonic()
        with _CpuSampler(self.stack.gateway.process.pid, self.workers) as cpu:
            run = self.stack.audited_run(scn, text, new_run_id(scn.name), self.reports)
        return step_result(
            size,
            run.audit,
            run.results["counters"],
            failure=str(run.results.get("failure") or ""),
            kernel_drops=run.kernel_drops,
            gateway_cpu=round(cpu.peak, 3),
            wall_s=round(time.monotonic() - t0, 1),
            bundle=str(run.bundle),
            command=f"python -m simulator run --scenario <{self.scenario_path} with {self.what}={size}>",
        )


def step_result(
    size: float,
    audit: dict[str, Any],
    counters: dict[str, Any],
    *,
    failure: str,
    kernel_drops: int,
    gateway_cpu: float | None,
    wall_s: float,
    bundle: str,
    command: str,
) -> StepResult:
    """One search step from a run's audit and its fleet counters (summed over agents): the same figures
    whichever runner ran it (the local stack here, burst.yml in harness/limit_playbook.py)."""
    return StepResult(
        size=size,
        passed=audit["verdict"] == "PASS",
        failed_slos=[x["slo"] for x in audit.get("slos", []) if not x.get("pass")],
        backlog=int(audit.get("buffered_expected") or 0),
        drain_s=audit.get("drain_time_s"),
        peak_rate=float(audit.get("peak_rate_during_flush") or audit.get("peak_rate") or 0),
        p99_recovery_s=audit.get("recovery_time_s"),
        missing=int(audit.get("missing") or 0),
        busy=int(counters.get("busy", 0)),
        kernel_drops=kernel_drops,
        overflow=int(counters.get("dropped_overflow", 0)),
        gateway_cpu=gateway_cpu,
        wall_s=wall_s,
        bundle=bundle,
        command=command,
        failure=failure,
    )


def _fmt(v: Any, spec: str = ",.0f") -> str:
    return "-" if v is None else format(v, spec)


def table(steps: list[StepResult]) -> str:
    head = f"{'step':>4} {'size':>9} {'backlog':>10} {'result':>6} {'drain s':>8} {'peak/s':>9} {'p99 rec s':>9} {'drops':>7} {'BUSY':>8} {'overflow':>8} {'gw cpu':>6}"
    rows = [head]
    for i, s in enumerate(steps, 1):
        rows.append(
            f"{i:>4} {_fmt(s.size, ',g'):>9} {s.backlog:>10,} {'PASS' if s.passed else 'FAIL':>6} "
            f"{_fmt(s.drain_s, '.1f'):>8} {s.peak_rate:>9,.0f} {_fmt(s.p99_recovery_s, '.1f'):>9} "
            f"{s.kernel_drops:>7,} {s.busy:>8,} {s.overflow:>8,} {_fmt(s.gateway_cpu, '.0%'):>6}"
        )
    return "\n".join(rows)


def write_report(res: SearchResult, out: Path, meta: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        **meta,
        "boundary": res.boundary,
        "first_fail": res.first_fail,
        "stopped": res.stopped,
        "limiting_factor": res.limit,
        "steps": [s.to_dict() for s in res.steps],
    }
    (out / "limit.json").write_text(json.dumps(doc, indent=2) + "\n")
    summary = (
        f"Limit search {meta.get('scenario')} varying {meta.get('vary')} in {meta.get('min')} .. {meta.get('max')}: "
        f"{res.stopped}\n  largest passing: {_fmt(res.boundary, ',g')}   first failing: {_fmt(res.first_fail, ',g')}\n"
        f"  limited by: {res.limit}\n  wall time {meta.get('wall_s', 0):.0f} s, {len(res.steps)} runs\n\n"
        + table(res.steps)
        + "\n"
    )
    (out / "summary.txt").write_text(summary)
    _plot(res, out / "limit.png")
    (out / "limit.html").write_text(
        "<!doctype html><meta charset=utf-8><title>limit search</title>"
        f"<h1>Limit search</h1><pre style='white-space:pre-wrap'>{html.escape(summary)}</pre>"
        "<img src='limit.png' style='max-width:100%'>"
    )
    return out


def _plot(res: SearchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    steps = sorted(res.steps, key=lambda s: s.backlog)
    x = [s.backlog for s in steps]
    for key, label in (("drain_s", "drain time s"), ("p99_recovery_s", "p99 recovery s")):
        ax.plot(x, [getattr(s, key) for s in steps], "-", label=label)
    for s in steps:
        m, c = ("o", "green") if s.passed else ("x", "red")
        for key in ("drain_s", "p99_recovery_s"):
            if getattr(s, key) is not None:
                ax.plot(s.backlog, getattr(s, key), m, color=c)
    ax2.plot(x, [s.peak_rate for s in steps], "-", label="peak readings/s")
    for s in steps:
        ax2.plot(s.backlog, s.peak_rate, "o" if s.passed else "x", color="green" if s.passed else "red")
    good = next((s for s in res.steps if s.size == res.boundary), None)
    for a in (ax, ax2):
        if good is not None:
            a.axvline(good.backlog, color="grey", ls="--", label=f"boundary ({res.boundary:,g})")
        a.set_xlabel("backlog (readings buffered during the outage)")
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    ax.set_ylabel("seconds")
    ax2.set_ylabel("readings/s")
    fig.suptitle(f"limit: {res.limit} ({res.stopped})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(
    scenario: str,
    what: str,
    lo: float,
    hi: float,
    reports: Path,
    budget_s: float,
    max_runs: int,
    inventory: Path | None = None,
) -> int:
    """The search on this machine's stack, or with ``inventory`` through ansible/burst.yml on its hosts."""
    from simulator.scenario import load

    scn, _ = load(scenario)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    def progress(s: StepResult, n: int) -> None:
        print(
            f"limit: step {n}: {what}={s.size:,g} backlog {s.backlog:,} {'PASS' if s.passed else 'FAIL'} "
            f"drain {_fmt(s.drain_s, '.1f')} s peak {s.peak_rate:,.0f}/s p99 recovery {_fmt(s.p99_recovery_s, '.1f')} s "
            f"drops {s.kernel_drops:,} BUSY {s.busy:,} overflow {s.overflow:,} ({s.wall_s:.0f} s; {s.bundle})",
            flush=True,
        )

    runner: LocalRunner | PlaybookRunner
    if inventory is None:
        runner = LocalRunner(scn, what, reports, scenario_path=scenario)
    else:
        runner = PlaybookRunner(scn, what, reports, inventory, reports / f"limit-{stamp}" / "steps")
    try:
        with runner:
            res = search(
                runner,
                lo,
                hi,
                budget_s=budget_s,
                max_runs=max_runs,
                integer=what == "devices",
                progress=progress,
            )
    except StepError as exc:
        print(f"limit: stopped, not a size limit: {exc}", file=sys.stderr)
        return 2
    meta = {
        "scenario": scenario,
        "vary": what,
        "min": lo,
        "max": hi,
        "budget_s": budget_s,
        "max_runs": max_runs,
        "wall_s": round(time.monotonic() - started, 1),
        "where": "this machine (broker + gateway started for the search)"
        if inventory is None
        else f"ansible/burst.yml on {inventory}",
    }
    out = write_report(res, reports / f"limit-{stamp}", meta)
    print((out / "summary.txt").read_text(), end="")
    print(f"limit: report {(out / 'limit.html').resolve()}")
    return 0
