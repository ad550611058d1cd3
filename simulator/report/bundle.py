"""The results bundle of a run: ``reports/<run-id>/``.

Files: ``scenario.yml`` (as given), ``config.json`` (effective config), ``agents/agent-<i>.json``
(each agent's results), ``phases.json`` (phase markers, unix seconds: outage start, flush start,
drained, recovered), ``audit.json``, ``summary.txt`` (one screen) and ``report.html`` (self-contained,
matplotlib plots embedded as PNG data URIs).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

REPORTS = Path("reports")


def bundle_dir(run_id: str, root: Path | None = None) -> Path:
    return (root or REPORTS) / run_id


def write_inputs(out: Path, scenario_text: str, config: dict[str, Any], agent_results: list[dict]) -> None:
    (out / "agents").mkdir(parents=True, exist_ok=True)
    (out / "scenario.yml").write_text(scenario_text)
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for r in agent_results:
        (out / "agents" / f"agent-{r['agent_index']}.json").write_text(json.dumps(r) + "\n")


def load_agent_results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "agents").glob("agent-*.json"))]


def phases_json(audit: dict[str, Any]) -> dict[str, Any]:
    ph = dict(audit["phases"])
    flush = ph.get("flush_start")
    ph["recovered"] = (
        round(flush + audit["recovery_time_s"], 3) if flush and audit["recovery_time_s"] is not None else None
    )
    if flush and audit.get("drain_time_s") is not None:
        ph["drained_in_kafka"] = round(flush + audit["drain_time_s"], 3)
    return {"run_id": audit["run_id"], "unit": "unix seconds", "markers": ph}


def summary_text(audit: dict[str, Any], report_path: Path | None = None) -> str:
    lat = audit["latency_ms"]
    lines = [
        f"Run {audit['run_id']}: {audit['verdict']}",
        f"  delivered {audit['delivered']:,}   missing {audit['missing']:,}   duplicates {audit['duplicates']:,}"
        f"   out of order {audit['out_of_order']:,}   unexpected {audit['unexpected']:,}",
        f"  buffered during outage: {audit['buffered_delivered']:,} of {audit['buffered_expected']:,} delivered",
        f"  records of this run {audit['records']:,}; skipped (other runs) {audit['skipped_other_runs']:,};"
        f" devices {audit['devices']:,}; agents {audit['agents']}",
        f"  peak {audit['peak_rate']:,} readings/s (during flush {audit['peak_rate_during_flush']:,})",
        f"  drain time {_drain(audit)}   recovery time {_s(audit['recovery_time_s'])}"
        f"   baseline p99 {audit['baseline_p99_ms']} ms",
        f"  latency ms ({audit['timestamp_type']}): p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}"
        f"  p99.9 {lat['p999']}  max {lat['max']}",
        "  SLOs:",
    ]
    lines += [f"    [{'PASS' if s['pass'] else 'FAIL'}] {s['slo']}: {s['reason']}" for s in audit["slos"]]
    if audit["missing_examples"]:
        lines.append("  missing, e.g.: " + "; ".join(audit["missing_examples"][:3]))
    lines += fault_lines(audit)
    if report_path is not None:
        lines.append(f"  report: {report_path}")
    return "\n".join(lines) + "\n"


def fault_lines(audit: dict[str, Any]) -> list[str]:
    """One line per injected fault: what, where, when (seconds after the flush started), duplicates it explains."""
    faults = audit.get("faults") or []
    if not faults:
        return []
    flush = (audit.get("phases") or {}).get("flush_start")
    out = ["  faults (times in s after the flush started):"]
    for f in faults:
        start, end = f.get("started_at"), f.get("ended_at")
        if flush and start is not None and f.get("lasts_to_end"):
            when = f"{start - flush:+.1f} .. end of run"
        elif flush and start is not None and end is not None:
            when = f"{start - flush:+.1f} .. {end - flush:+.1f}"
        else:
            when = f"planned {f.get('planned_at')}"
        line = f"    {f.get('label')} on {f.get('host')}: {when}; duplicates {f.get('duplicates', 0)}"
        if f.get("error"):
            line += f"; ERROR {f['error']}"
        if f.get("note"):
            line += f"; {f['note']}"
        out.append(line)
    if audit.get("unexplained_duplicates"):
        out.append(f"    duplicates outside every fault window: {audit['unexplained_duplicates']}")
    for r in audit.get("agent_restarts") or []:
        out.append(
            f"    agent {r.get('agent_index')} restarted: down {r.get('down_s')} s, "
            f"{r.get('restored_buffered')} buffered readings restored from disk"
        )
    return out


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} s"


def _drain(audit: dict[str, Any]) -> str:
    """The drain time, or that the outage backlog never drained (never "0.0 s" for a drain that did not happen)."""
    if audit.get("drained") is False:
        left = audit["buffered_expected"] - audit["buffered_delivered"]
        return (
            f"NOT DRAINED ({left:,} of {audit['buffered_expected']:,} buffered readings never reached Kafka)"
        )
    return _s(audit["drain_time_s"])


def _plots(audit: dict[str, Any], agent_results: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tl = audit["timeline"]
    if not tl:
        return "<p>No records: nothing to plot.</p>"
    t0 = audit["phases"].get("run_start") or tl[0]["t"]
    xs = [p["t"] - t0 for p in tl]
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    ax = axes[0]
    ax.plot(xs, [p["rate"] for p in tl], label="appended to Kafka (readings/s)", color="tab:blue")
    sent = _agent_rate(agent_results, t0)
    if sent:
        ax.plot(*zip(*sent, strict=True), label="sent by devices (readings/s)", color="tab:gray", alpha=0.6)
    ax.set_ylabel("readings/s")
    ax.set_title("Throughput")
    ax.legend(loc="upper left")
    ax = axes[1]
    ax.plot(xs, [p["backlog"] for p in tl], color="tab:orange", label="generated, not yet in Kafka")
    ax.set_ylabel("readings")
    ax.set_title("Backlog")
    ax.legend(loc="upper left")
    ax = axes[2]
    ax.plot(xs, [p["p50_ms"] or float("nan") for p in tl], label="p50", color="tab:green")
    ax.plot(xs, [p["p99_ms"] or float("nan") for p in tl], label="p99", color="tab:red")
    ax.set_yscale("log")
    ax.set_ylabel("ms (device -> Kafka)")
    ax.set_xlabel("seconds since run start")
    ax.set_title("End-to-end latency")
    ax.legend(loc="upper left")
    ph = audit["phases"]
    for a in axes:
        if ph.get("outage_start") and ph.get("flush_start"):
            a.axvspan(
                ph["outage_start"] - t0, ph["flush_start"] - t0, color="red", alpha=0.12, label="outage"
            )
        end = ph.get("drained") or (
            ph["flush_start"] + (audit["drain_time_s"] or 0) if ph.get("flush_start") else None
        )
        if ph.get("flush_start") and end:
            a.axvspan(ph["flush_start"] - t0, end - t0, color="gold", alpha=0.2, label="flush")
        for f in audit.get("faults") or []:
            if f.get("started_at") is not None:
                stop = f.get("ended_at") or f["started_at"]
                a.axvspan(
                    f["started_at"] - t0, max(stop, f["started_at"] + 0.3) - t0, color="purple", alpha=0.25
                )
    for f in audit.get("faults") or []:
        if f.get("started_at") is not None:
            axes[0].annotate(
                f.get("label", "fault"),
                (f["started_at"] - t0, 0),
                xycoords=("data", "axes fraction"),
                xytext=(2, 4),
                textcoords="offset points",
                color="purple",
                fontsize=8,
                rotation=90,
            )
        a.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig, "throughput, backlog and latency") + _zoom_plot(audit)


def _png(fig: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _zoom_plot(audit: dict[str, Any]) -> str:
    """The flush window at 100 ms: the rate the per-second view shows as one or two bars, and the backlog."""
    import matplotlib.pyplot as plt

    zoom = audit.get("flush_timeline_100ms") or []
    flush = audit["phases"].get("flush_start")
    if not zoom or not flush:
        return ""
    xs = [p["t"] - flush for p in zoom]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.step(
        xs,
        [p["rate"] for p in zoom],
        where="post",
        color="tab:blue",
        label="appended (readings/s, 100 ms bins)",
    )
    ax.set_ylabel("readings/s")
    ax.set_xlabel("seconds since the flush started")
    ax.grid(alpha=0.3)
    back = ax.twinx()
    back.plot(
        [x + 0.1 for x in xs], [p["backlog"] for p in zoom], color="tab:orange", label="backlog (readings)"
    )
    back.set_ylabel("readings not yet in Kafka")
    ax.axvline(0, color="black", lw=0.8)
    if audit.get("drained") and audit.get("drain_time_s") is not None:
        ax.axvline(audit["drain_time_s"], color="tab:green", lw=1, ls="--", label="drained")
    lines = ax.get_legend_handles_labels()
    more = back.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    ax.set_title("Flush window at 100 ms")
    fig.tight_layout()
    return "\n<h3>The flush, zoomed (100 ms)</h3>\n" + _png(fig, "flush window at 100 ms resolution")


def _agent_rate(agent_results: list[dict], t0: float) -> list[tuple[float, int]]:
    per: dict[int, int] = {}
    for r in agent_results:
        prev = None
        for s in r.get("samples", []):
            if prev is not None:
                sec = int(s["t"])
                per[sec] = per.get(sec, 0) + s["sent_readings"] - prev
            prev = s["sent_readings"]
    return [(sec - t0, v) for sec, v in sorted(per.items())]


def report_html(audit: dict[str, Any], agent_results: list[dict], scenario_text: str) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td class={'pass' if s['pass'] else 'fail'}>{'PASS' if s['pass'] else 'FAIL'}</td>"
        f"<td>{esc(s['slo'])}</td><td>{esc(s['reason'])}</td></tr>"
        for s in audit["slos"]
    )
    agents = "".join(
        f"<tr><td>{r['agent_index']}</td><td>{esc(r['host'])}</td><td>{r['devices']}</td>"
        f"<td>{r['counters']['generated']}</td><td>{r['counters']['acked']}</td>"
        f"<td>{r['counters']['retransmits']}</td><td>{r['counters']['busy']}</td>"
        f"<td>{r.get('start_skew_ms', 'n/a')}</td><td>{r.get('clock_offset_ms', 'n/a')}</td></tr>"
        for r in agent_results
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Run {esc(audit["run_id"])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}
.pass{{color:#fff;background:#2a2}}.fail{{color:#fff;background:#c22}}pre{{background:#f4f4f4;padding:8px;white-space:pre-wrap;overflow-wrap:anywhere}}</style>
</head><body>
<h1>Run {esc(audit["run_id"])}: <span class="{"pass" if audit["verdict"] == "PASS" else "fail"}">{audit["verdict"]}</span></h1>
<pre>{esc(summary_text(audit))}</pre>
<h2>SLOs</h2><table>{rows}</table>
<h2>Throughput, backlog, latency</h2>
<p>Red: outage (devices buffer). Yellow: flush (outage start to backlog drained). Purple: injected faults.</p>
{_plots(audit, agent_results)}
{_fault_table(audit)}
<h2>Agents</h2>
<table><tr><th>#</th><th>host</th><th>devices</th><th>generated</th><th>acked</th><th>retransmits</th>
<th>busy</th><th>start skew ms</th><th>clock offset ms</th></tr>{agents}</table>
<h2>Scenario</h2><pre>{esc(scenario_text)}</pre>
</body></html>
"""


def _fault_table(audit: dict[str, Any]) -> str:
    faults = audit.get("faults") or []
    if not faults:
        return ""
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(str(f.get('label')))}</td><td>{esc(str(f.get('host')))}</td>"
        f"<td>{esc(json.dumps(f.get('params', {})))}</td><td>{f.get('started_at')}</td><td>{f.get('ended_at')}</td>"
        f"<td>{f.get('duplicates', 0)}</td><td>{esc(f.get('error') or f.get('duplicate_cause') or f.get('note') or '')}</td></tr>"
        for f in faults
    )
    return (
        "<h2>Faults</h2><table><tr><th>fault</th><th>host</th><th>parameters</th><th>started (unix s)</th>"
        f"<th>ended</th><th>duplicates</th><th>notes</th></tr>{rows}</table>"
    )


def write_audit(out: Path, audit: dict[str, Any], agent_results: list[dict], scenario_text: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(audit, indent=1) + "\n")
    (out / "phases.json").write_text(json.dumps(phases_json(audit), indent=2) + "\n")
    report = out / "report.html"
    report.write_text(report_html(audit, agent_results, scenario_text))
    (out / "summary.txt").write_text(summary_text(audit, report))
    return report
