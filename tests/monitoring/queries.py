"""Every PromQL expression the pilot ships: dashboard panels, annotations, variables and rules.

``dashboard_queries()`` reads the committed Grafana JSON (dashboards/json/), ``rule_queries()`` the
rule files of the monitoring role. ``substitute`` replaces Grafana's variables so Prometheus can run
the query; ``selectors`` lists the vector selectors of an expression (for alert rules, whose
expression is empty while all is well, the test checks that each selector has data).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards" / "json"
RULES_DIR = ROOT / "roles" / "monitoring" / "files" / "rules"


@dataclass(frozen=True)
class ShippedQuery:
    source: str  # dashboard uid or rule file name
    where: str  # "panel 'Title' (A)", "annotation 'Run phases'", "alert IotGatewayDown", ...
    expr: str
    kind: str  # panel | annotation | variable | record | alert

    def __str__(self) -> str:
        return f"{self.source}: {self.where}: {self.expr}"


@dataclass(frozen=True)
class DashboardVariable:
    dashboard: str
    name: str
    metric: str
    label: str


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


_LABEL_VALUES = re.compile(r"^label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)$")


def dashboard_variables(uid: str, dash: dict) -> list[DashboardVariable]:
    out = []
    for var in dash.get("templating", {}).get("list", []):
        m = _LABEL_VALUES.match(var.get("definition", ""))
        if m is None:
            raise ValueError(f"{uid}: variable {var.get('name')!r} is not label_values(metric, label)")
        out.append(DashboardVariable(uid, var["name"], m.group(1), m.group(2)))
    return out


def dashboard_queries(uid: str, dash: dict) -> list[ShippedQuery]:
    out = []
    for panel in dash.get("panels", []):
        for target in panel.get("targets", []):
            where = f"panel {panel['title']!r} ({target['refId']})"
            out.append(ShippedQuery(uid, where, target["expr"], "panel"))
    for ann in dash.get("annotations", {}).get("list", []):
        if "expr" in ann:
            out.append(ShippedQuery(uid, f"annotation {ann['name']!r}", ann["expr"], "annotation"))
    for var in dashboard_variables(uid, dash):
        out.append(ShippedQuery(uid, f"variable ${var.name}", var.metric, "variable"))
    return out


def rule_queries(rules_dir: Path = RULES_DIR) -> list[ShippedQuery]:
    out = []
    for path in sorted(rules_dir.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    out.append(ShippedQuery(path.name, f"record {rule['record']}", rule["expr"], "record"))
                else:
                    out.append(ShippedQuery(path.name, f"alert {rule['alert']}", rule["expr"], "alert"))
    return out


_VAR = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")


def substitute(expr: str, builtins: dict[str, str], variables: dict[str, str]) -> str:
    """Replace ``$__rate_interval``-style builtins and dashboard variables; unknown names raise KeyError."""

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        raise KeyError(f"no value for ${name} in {expr!r}")

    return _VAR.sub(repl, expr)


def regex_alternation(values: list[str]) -> str:
    """A multi-value variable as Grafana substitutes it inside ``=~"..."``: ``(a|b)``, regex-escaped."""
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


# ---------------------------------------------------------------- selectors

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_OPERATORS = {"and", "or", "unless", "bool", "inf", "nan", "atan2"}
_AGGREGATORS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
}
_DURATION = re.compile(r"\s*-?(\d+(ms|[smhdwy]))+")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _skip_group(expr: str, i: int, close: str) -> int:
    """Index just past the bracket group opening at ``expr[i]`` (strings inside are honoured)."""
    opening = expr[i]
    depth = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`":
            i = expr.index(ch, i + 1) + 1
            continue
        if ch == opening:
            depth += 1
        elif ch == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced {opening!r} in {expr!r}")


def selectors(expr: str) -> list[str]:
    """Vector selectors (``name{matchers}``, ``name`` or ``{matchers}``) of a PromQL expression."""
    found: list[str] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "\"'`":
            i = expr.index(ch, i + 1) + 1
        elif ch == "[":
            i = _skip_group(expr, i, "]")
        elif ch == "{":
            end = _skip_group(expr, i, "}")
            found.append(expr[i:end])
            i = end
        elif ch.isdigit() or (ch == "." and i + 1 < len(expr) and expr[i + 1].isdigit()):
            m = re.compile(r"[0-9.]+(e[+-]?\d+)?|0x[0-9a-fA-F]+").match(expr, i)
            i = m.end() if m else i + 1
        elif _IDENT.match(expr, i):
            m = _IDENT.match(expr, i)
            assert m is not None
            name, j = m.group(), m.end()
            while j < len(expr) and expr[j] == " ":
                j += 1
            nxt = expr[j] if j < len(expr) else ""
            if name in _KEYWORDS:
                i = _skip_group(expr, j, ")") if nxt == "(" else j
            elif name == "offset":
                d = _DURATION.match(expr, m.end())
                i = d.end() if d else m.end()
            elif nxt == "(" or name.lower() in _OPERATORS or name in _AGGREGATORS:
                i = m.end()
            elif nxt == "{":
                end = _skip_group(expr, j, "}")
                found.append(name + expr[j:end])
                i = end
            else:
                found.append(name)
                i = m.end()
        else:
            i += 1
    return found
