"""Small builders for Grafana dashboard JSON (schema 39): panels, targets, template variables.

Only what the pilot's dashboards use. Every query goes to the provisioned Prometheus datasource whose
uid is fixed (``DATASOURCE_UID``), so the dashboards work unchanged wherever the datasource file is
provisioned (dashboards/provisioning/ or the monitoring role).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATASOURCE_UID = "iot-prometheus"
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
SCHEMA_VERSION = 39
PANEL_WIDTH = 12
PANEL_HEIGHT = 8


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    description: str = ""
    width: int = PANEL_WIDTH


@dataclass(frozen=True)
class Variable:
    """A query variable filled from ``label_values(metric, label)``; multi-select with an "All" option."""

    name: str
    label: str
    metric: str
    label_name: str = "instance"

    @property
    def definition(self) -> str:
        return f"label_values({self.metric}, {self.label_name})"


@dataclass(frozen=True)
class PhaseAnnotation:
    """Run phases drawn from a Prometheus series (docs/monitoring.md "Run phases")."""

    expr: str = "max by (run, phase) (iot_run_phase_info) == 1"
    name: str = "Run phases"


@dataclass
class Dashboard:
    uid: str
    title: str
    panels: list[Panel]
    tags: tuple[str, ...] = ("iot-burst",)
    variables: list[Variable] = field(default_factory=list)
    phases: PhaseAnnotation | None = None
    description: str = ""


def _target(query: Query, ref: int) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": True,
        "refId": chr(ord("A") + ref),
    }


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [_target(q, i) for i, q in enumerate(panel.queries)],
    }
    if panel.kind == "timeseries":
        out["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    else:
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return out


def _variable(var: Variable) -> dict[str, Any]:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "definition": var.definition,
        "query": {"query": var.definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "options": [],
    }


def _annotations(phases: PhaseAnnotation | None) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }
    ]
    if phases is not None:
        # markers posted after a run by dashboards/annotate.py (tag "iot-burst")
        items.append(
            {
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": False,
                "iconColor": "purple",
                "name": "Run markers",
                "target": {"type": "tags", "tags": ["iot-burst"], "matchAny": True, "limit": 100},
            }
        )
        items.append(
            {
                "datasource": DATASOURCE,
                "enable": True,
                "hide": False,
                "iconColor": "orange",
                "name": phases.name,
                "expr": phases.expr,
                "step": "5s",
                "titleFormat": "{{phase}}",
                "textFormat": "run {{run}}",
                "tagKeys": "phase",
                "useValueForTime": False,
            }
        )
    return {"list": items}


def render(dash: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana JSON: panels laid out left to right, two per row."""
    panels = []
    x = y = 0
    for pid, panel in enumerate(dash.panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + PANEL_HEIGHT
        panels.append(_panel(panel, pid, x, y))
        x += panel.width
    return {
        "uid": dash.uid,
        "title": dash.title,
        "description": dash.description,
        "tags": list(dash.tags),
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": _annotations(dash.phases),
        "templating": {"list": [_variable(v) for v in dash.variables]},
        "panels": panels,
    }
