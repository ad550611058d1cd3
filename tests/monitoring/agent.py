"""The simulator agent as a scrape target of the proof test (filled in once the agent serves /metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class MetricsAgent:
    port: int

    def run_burst(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def start_metrics_agent(workdir: Path, gateway) -> MetricsAgent | None:
    """None while the simulator agent does not serve Prometheus metrics."""
    return None
