"""The one-machine stack every harness runs on: a local broker, the telemetry topic, the real gateway.

``make demo``, ``make soak`` and ``make limit`` all start the same three things, run ordinary scenario
runs against them and audit each one; this is that part, written once. The stack lives in a temporary
directory under ``.cache/demo/``; leaving the ``with`` block (normally, on an error, on Ctrl-C or on
SIGTERM, which is turned into KeyboardInterrupt while the stack is up) stops the gateway and the broker
and deletes their data.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from broker.kafka import CACHE, KafkaBroker
from harness.gateway import RunningGateway, start_gateway
from simulator import aio
from simulator.scenario import Scenario

TOPIC = "iot_telemetry"
PARTITIONS = 6


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def create_topic(broker: KafkaBroker, partitions: int = PARTITIONS) -> None:
    """The telemetry topic. LogAppendTime: record timestamps are the broker's append time, so the audit's
    latency is device -> Kafka append."""
    result = broker.run_tool(
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        broker.bootstrap,
        "--create",
        "--if-not-exists",
        "--topic",
        TOPIC,
        "--partitions",
        str(partitions),
        "--replication-factor",
        "1",
        "--config",
        "message.timestamp.type=LogAppendTime",
    )
    if result.returncode != 0:
        raise RuntimeError(f"creating topic {TOPIC} failed:\n{result.stdout}{result.stderr}")


@dataclass
class AuditedRun:
    """One run against the stack and its audit (``results`` and ``audit`` as the bundle holds them)."""

    bundle: Path
    results: dict[str, Any]
    audit: dict[str, Any]
    kernel_drops: int  # the gateway's kernel UDP receive drops during this run
    audit_s: float


class Stack:
    """Broker + topic + gateway for the length of a ``with`` block; ``say`` gets one line per step."""

    def __init__(self, name: str, gateway_workers: int = 2, say: Callable[[str], None] | None = None) -> None:
        self.name, self.gateway_workers = name, gateway_workers
        self.say = say or (lambda line: print(f"{name}: {line}", flush=True))
        (CACHE / "demo").mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE / "demo"))
        self.broker = KafkaBroker(workdir=self.work / "broker")
        self.gw: RunningGateway | None = None
        self._old_term: Any = None

    @property
    def gateway(self) -> RunningGateway:
        if self.gw is None:
            raise RuntimeError(f"{self.name}: the stack is not started (use it in a with block)")
        return self.gw

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}/metrics"

    def __enter__(self) -> Stack:
        self._old_term = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.say("starting Kafka (KRaft) ...")
            self.broker.start()
            create_topic(self.broker)
            self.say(f"broker on {self.broker.bootstrap}; starting the gateway ...")
            self.gw = start_gateway(
                self.broker.bootstrap, TOPIC, self.work / "gateway", udp={"workers": self.gateway_workers}
            )
            self.say(f"gateway UDP {self.gw.udp_port}, metrics {self.metrics_url}")
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        try:
            if self.gw is not None:
                self.gw.stop()
            self.broker.stop(delete=True)
            shutil.rmtree(self.work, ignore_errors=True)
        finally:
            signal.signal(signal.SIGTERM, self._old_term or signal.SIG_DFL)
        self.say("gateway and broker stopped, temporary data removed")

    def run(
        self, scn: Scenario, text: str, run_id: str, reports: Path, progress: bool = False
    ) -> tuple[Path, dict[str, Any]]:
        """One ordinary run of ``scn`` against the gateway (no audit): its bundle dir and results."""
        from simulator.orchestration.session import run_local

        return aio.run(
            run_local(
                scn,
                text,
                "127.0.0.1",
                self.gateway.udp_port,
                self.gateway.master_key,
                run_id,
                reports,
                metrics_url=self.metrics_url,
                progress=progress,
            )
        )

    def audited_run(
        self,
        scn: Scenario,
        text: str,
        run_id: str,
        reports: Path,
        progress: bool = False,
        between: Callable[[Path, dict[str, Any]], None] | None = None,
    ) -> AuditedRun:
        """Run, then audit it; the gateway's produce errors during the run count as the run's errors.
        ``between(bundle, results)`` is called after the run and before its audit."""
        from simulator.orchestration.session import audit_bundle

        gw = self.gateway
        drops0 = gw.metric("iot_udp_receive_buffer_errors_total")
        prod0 = gw.metric("iot_produce_errors_total")
        bundle, results = self.run(scn, text, run_id, reports, progress)
        drops = int(gw.metric("iot_udp_receive_buffer_errors_total") - drops0)
        errors = {"gateway_produce_errors": int(gw.metric("iot_produce_errors_total") - prod0)}
        if between is not None:
            between(bundle, results)
        a0 = time.monotonic()
        audit = aio.run(audit_bundle(bundle, self.broker.bootstrap, TOPIC, scn, errors))
        return AuditedRun(bundle, results, audit, drops, time.monotonic() - a0)
