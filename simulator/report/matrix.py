"""The fault matrix: several audited runs, one fault each, in one report.

    python -m simulator.report.matrix --out reports/fault-matrix-<ts> reports/<run-1> reports/<run-2> ...

Writes ``matrix.json`` (one row per run: the fault, when it hit, delivered / missing / duplicates and
the verdict), ``matrix.txt`` (the same as a table) and ``matrix.html`` (the table and one throughput
plot per run with its fault window). ``make lab-faults`` runs every scenarios/faults/*.yml through
ansible/burst.yml and then this. A run without an audit (its playbook failed) is a FAIL row, unless
its scenario expected that failure (``faults.expect_failure``, e.g. disk-full) and the play's output
holds the expected text (``expected-failure.json``, written by scripts/fault-matrix.sh): a PASS row.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from pathlib import Path
from typing import Any


def load(bundle: Path) -> dict[str, Any] | None:
    """The run's audit.json, or None when the run did not get that far."""
    audit_file = bundle / "audit.json"
    return json.loads(audit_file.read_text()) if audit_file.exists() else None


def row(bundle: Path, audit: dict[str, Any] | None) -> dict[str, Any]:
    expected = bundle / "expected-failure.json"
    if audit is None and expected.exists():
        # A fault the run must not survive (faults.expect_failure): scripts/fault-matrix.sh found the
        # expected text in the failed play's output (burst.log).
        exp = json.loads(expected.read_text())
        from simulator.scenario import load as load_scenario

        scn, _ = load_scenario(exp["scenario"])
        return {
            "run": bundle.name,
            "fault": ", ".join(sorted({ev.label for ev in scn.faults.events})) or "none",
            "verdict": "PASS",
            "notes": f"failed as expected ({exp['expect']!r})",
            "error": f"failed as expected: {exp['line'][:400]}",
        }
    if audit is None:
        return {"run": bundle.name, "verdict": "FAIL", "error": "no audit.json (the run did not finish)"}
    flush = (audit.get("phases") or {}).get("flush_start")
    faults = audit.get("faults") or []
    hit = [f for f in faults if f.get("started_at") is not None]
    return {
        "run": audit["run_id"],
        "fault": ", ".join(sorted({f["label"] for f in faults})) or "none",
        "hosts": sorted({f["host"] for f in faults}),
        "fault_at_s": round(min(f["started_at"] for f in hit) - flush, 1) if hit and flush else None,
        # a host lost for the rest of the run (broker-node-loss) has no end: "to end", not 0
        "fault_lasted_s": (
            "to end"
            if any(f.get("lasts_to_end") for f in hit)
            else max((f.get("lasted_s") or 0) for f in hit)
            if hit
            else None
        ),
        "delivered": audit["delivered"],
        "missing": audit["missing"],
        "duplicates": audit["duplicates"],
        "duplicates_explained": sum(f.get("duplicates", 0) for f in faults),
        "buffered_delivered": audit["buffered_delivered"],
        "buffered_expected": audit["buffered_expected"],
        "peak_rate_during_flush": audit["peak_rate_during_flush"],
        "drain_time_s": audit["drain_time_s"],
        "agent_restarts": len(audit.get("agent_restarts") or []),
        "notes": "; ".join(
            sorted(
                {f.get("note") or "" for f in faults}
                | {f.get("duplicate_cause") or "" for f in faults} - {""}
            )
        ),
        "verdict": audit["verdict"],
        "failed_slos": [s["slo"] for s in audit["slos"] if not s["pass"]],
    }


COLUMNS = [
    ("fault", "fault"),
    ("fault_at_s", "at (s into flush)"),
    ("fault_lasted_s", "lasted s"),
    ("delivered", "delivered"),
    ("missing", "missing"),
    ("duplicates", "duplicates"),
    ("peak_rate_during_flush", "peak/s"),
    ("drain_time_s", "drain s"),
    ("verdict", "verdict"),
]


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[h for _, h in COLUMNS]] + [[_fmt(r.get(k)) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['run']}: {r['error']}")
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _plot(audits: list[dict[str, Any]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not audits:
        return "<p>No audited run: nothing to plot.</p>"
    fig, axes = plt.subplots(len(audits), 1, figsize=(10, 2.2 * len(audits)), sharex=True, squeeze=False)
    for ax, audit in zip(axes[:, 0], audits, strict=True):
        flush = audit["phases"].get("flush_start") or 0
        tl = audit["timeline"]
        ax.plot([p["t"] - flush for p in tl], [p["rate"] for p in tl], color="tab:blue")
        for f in audit.get("faults") or []:
            if f.get("started_at") is not None:
                end = max(f.get("ended_at") or f["started_at"], f["started_at"] + 0.3)
                ax.axvspan(f["started_at"] - flush, end - flush, color="purple", alpha=0.25)
        labels = ", ".join(sorted({f["label"] for f in audit.get("faults") or []})) or "no fault"
        ax.set_title(f"{labels}: {audit['missing']} missing, {audit['duplicates']} duplicates", fontsize=9)
        ax.set_ylabel("readings/s")
        ax.set_xlim(-15, 60)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds since the flush started (purple: the fault)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return f'<img alt="throughput per fault" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def write(out: Path, bundles: list[Path]) -> list[dict[str, Any]]:
    audits = [load(b) for b in bundles]
    rows = [row(b, a) for b, a in zip(bundles, audits, strict=True)]
    out.mkdir(parents=True, exist_ok=True)
    verdict = "PASS" if rows and all(r["verdict"] == "PASS" for r in rows) else "FAIL"
    (out / "matrix.json").write_text(json.dumps({"verdict": verdict, "runs": rows}, indent=1) + "\n")
    text = f"Fault matrix: {verdict} ({len(rows)} runs)\n" + table(rows)
    (out / "matrix.txt").write_text(text)
    esc = html.escape
    links = "".join(f'<li><a href="../{esc(b.name)}/report.html">{esc(b.name)}</a></li>' for b in bundles)
    (out / "matrix.html").write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fault matrix</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}pre{{background:#f4f4f4;padding:8px}}</style>
</head><body><h1>Fault matrix: {verdict}</h1>
<pre>{esc(text)}</pre>
<h2>Throughput around each fault</h2>{_plot([a for a in audits if a is not None])}
<h2>Why duplicates appear</h2><ul>{"".join(f"<li>{esc(r['fault'])}: {esc(r.get('notes') or 'none')}</li>" for r in rows if r.get("fault"))}</ul>
<h2>Runs</h2><ul>{links}</ul>
</body></html>
"""
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m simulator.report.matrix", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="directory for matrix.json / .txt / .html")
    ap.add_argument("bundles", nargs="+", type=Path, help="reports/<run-id> directories")
    args = ap.parse_args(argv)
    rows = write(args.out, args.bundles)
    print((args.out / "matrix.txt").read_text(), end="")
    print(f"report: {args.out / 'matrix.html'}")
    return 0 if rows and all(r["verdict"] == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
