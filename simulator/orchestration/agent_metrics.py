"""The agent's Prometheus metrics, read from its live state at scrape time (GET /metrics, no token).

Names (dashboards/panels.py and the alert rules depend on them):
``iot_agent_readings_generated_total``, ``iot_agent_readings_sent_total``, ``iot_agent_readings_acked_total``,
``iot_agent_retransmits_total``, ``iot_agent_busy_total``, ``iot_agent_buffered_readings``,
``iot_agent_devices``, ``iot_agent_start_skew_seconds``, ``iot_agent_clock_offset_seconds{source}`` and
``iot_run_phase_info{run, phase}`` (1 for the phase running now). Counters restart at 0 when a new
scenario is loaded, which Prometheus' rate() treats as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from simulator.orchestration.agent import Agent


class AgentCollector:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        a = self.agent
        fleet = a.fleet
        c = fleet.counters if fleet is not None else None
        for name, doc, attr in (
            ("iot_agent_readings_generated", "Readings the simulated devices generated", "generated"),
            (
                "iot_agent_readings_sent",
                "Readings sent in datagrams (retransmissions included)",
                "sent_readings",
            ),
            ("iot_agent_readings_acked", "Readings the gateway acknowledged", "acked"),
            ("iot_agent_retransmits", "Batches sent again after an ack timeout", "retransmits"),
            ("iot_agent_busy", "BUSY answers received", "busy"),
        ):
            yield CounterMetricFamily(name, doc, value=getattr(c, attr) if c is not None else 0)
        yield GaugeMetricFamily(
            "iot_agent_buffered_readings",
            "Readings held by devices, not yet acked",
            value=fleet.buffered if fleet else 0,
        )
        yield GaugeMetricFamily(
            "iot_agent_devices", "Devices simulated by this agent", value=len(fleet.devices) if fleet else 0
        )
        skew = GaugeMetricFamily("iot_agent_start_skew_seconds", "How late this agent started after T0")
        if a.start_skew_ms is not None:
            skew.add_metric([], a.start_skew_ms / 1000.0)
        yield skew
        offset = GaugeMetricFamily(
            "iot_agent_clock_offset_seconds",
            "This host's clock offset: from NTP (source=chrony) or from the controller's clock (source=controller)",
            labels=["source"],
        )
        if a.clock_offset_ms is not None:
            offset.add_metric(["chrony"], a.clock_offset_ms / 1000.0)
        if a.controller_offset_ms is not None:
            offset.add_metric(["controller"], a.controller_offset_ms / 1000.0)
        yield offset
        phase = GaugeMetricFamily(
            "iot_run_phase_info", "1 for the scenario phase running now", labels=["run", "phase"]
        )
        if fleet is not None and a.phase and a.state == "running":
            phase.add_metric([fleet.run_id, a.phase], 1.0)
        yield phase


def exposition(agent: Agent) -> tuple[str, bytes]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    return CONTENT_TYPE_LATEST, generate_latest(registry)
