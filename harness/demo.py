"""``make demo``: the whole burst on one machine, then everything it started is stopped.

Local Kafka broker (own data dir under .cache/demo/) -> gateway (harness.gateway, fresh random fleet
key) -> simulator run of the scenario -> audit -> summary and HTML report path. Ctrl-C or SIGTERM stop
the run; the gateway and broker are stopped and their temporary data deleted in every case.
The run shows its progress (a plain line every few seconds when stdout is not a terminal) and reads the
gateway's /metrics: its refused datagrams name the cause of a stalled run and count as the run's errors.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

from broker.kafka import CACHE, KafkaBroker
from simulator import aio
from simulator.orchestration.runner import new_run_id
from simulator.orchestration.session import audit_bundle, run_local
from simulator.scenario import load, readings_per_datagram

TOPIC = "iot_telemetry"


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _create_topic(broker: KafkaBroker, partitions: int) -> None:
    # LogAppendTime: record timestamps are the broker's append time, so latency is device -> Kafka append.
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


def main(scenario_path: str, reports: Path, gateway_workers: int = 2) -> int:
    from harness.gateway import start_gateway

    scn, text = load(scenario_path)
    (CACHE / "demo").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE / "demo"))
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    broker = KafkaBroker(workdir=work / "broker")
    gw = None
    try:
        print(
            f"demo: scenario {scenario_path} ({scn.devices.count:,} devices, {len(scn.phases)} phases)",
            flush=True,
        )
        print("demo: starting Kafka (KRaft) ...", flush=True)
        broker.start()
        _create_topic(broker, 6)
        print(f"demo: broker on {broker.bootstrap}; starting the gateway ...", flush=True)
        gw = start_gateway(broker.bootstrap, TOPIC, work / "gateway", udp={"workers": gateway_workers})
        print(f"demo: gateway UDP {gw.udp_port}, metrics http://127.0.0.1:{gw.http_port}/metrics", flush=True)
        run_id = new_run_id(scn.name)
        print(f"demo: run {run_id}: phases {[(p.name, p.kind) for p in scn.phases]}", flush=True)
        print(
            f"demo: up to {readings_per_datagram(scn)} readings per datagram "
            f"(flush.batch_size {scn.flush.batch_size}, flush.max_datagram_bytes {scn.flush.max_datagram_bytes:,})",
            flush=True,
        )
        metrics_url = f"http://127.0.0.1:{gw.http_port}/metrics"
        out, results = aio.run(
            run_local(
                scn,
                text,
                "127.0.0.1",
                gw.udp_port,
                gw.master_key,
                run_id,
                reports,
                metrics_url=metrics_url,
                progress=True,
            )
        )
        c = results["counters"]
        print(
            f"demo: run {results['status']}: generated {c['generated']:,}, acked {c['acked']:,}, "
            f"datagrams {c['datagrams']:,} (largest {c['max_datagram_bytes']:,} bytes), "
            f"retransmits {c['retransmits']:,}, timeouts {c['timeouts']:,}, BUSY {c['busy']:,}, "
            f"kernel drops at the gateway {int(gw.metric('iot_udp_receive_buffer_errors_total')):,}",
            flush=True,
        )
        if results.get("failure"):
            print(f"demo: run FAILED: {results['failure']}", flush=True)
        errors = {"gateway_produce_errors": int(gw.metric("iot_produce_errors_total"))}
        print("demo: auditing the topic ...", flush=True)
        audit = aio.run(audit_bundle(out, broker.bootstrap, TOPIC, scn, errors))
        print((out / "summary.txt").read_text(), end="")
        print(f"demo: HTML report: {(out / 'report.html').resolve()}")
        return 0 if audit["verdict"] == "PASS" else 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping everything it started", flush=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if gw is not None:
            gw.stop()
        broker.stop(delete=True)
        shutil.rmtree(work, ignore_errors=True)
        signal.signal(signal.SIGTERM, old_term)
        print("demo: gateway and broker stopped, temporary data removed", flush=True)
