"""``python -m bench`` (``make bench``): gateway end-to-end acked readings/s vs a bare aiokafka producer.

Starts its own broker (Apache Kafka from the project's cache) with a second listener reached through a
delaying TCP proxy (``bench/delay_proxy.py``, 250 ms on every broker -> client byte), then measures:
  1. bare producer (``send()`` per record, and ``send_batch()``), same records, same producer settings;
  2. the gateway end to end (loadgen devices -> UDP -> gateway -> Kafka -> ACK), at aiokafka's lz4 level (9, as the
     bare producer) and again at ``--fast-level`` (1: what a user would pick for CPU); then, on the same gateway,
     a paced load at half the rate it reached, for the ACK latency at half load (``half_load``);
  3. both again through the 250 ms proxy;
  4. ``python -m simulator capacity --json`` when available;
  5. the peers (``bench/peers/``): the gateway's legacy path, rsyslog, the OpenTelemetry Collector under the
     same UDP load, and the confluent-kafka producer ceilings next to aiokafka's, under the ``peers`` key.
Writes ``reports/bench-<timestamp>.json`` and prints a table. Figures on a shared machine are noisy: the
load average is recorded with each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench import bare
from bench.cpu import load_average
from bench.e2e import GatewayRun
from bench.peers import otelcol, run_peers
from bench.report import print_peers, print_table
from broker.kafka import KafkaBroker, free_port
from gateway.config import KafkaConfig, LimitsConfig

ROOT = Path(__file__).resolve().parent.parent


def make_records(devices: int, readings: int) -> list[tuple[bytes, bytes]]:
    now = int(time.time() * 1000)
    out = []
    for d in range(devices):
        device_id = f"sim-bench-{d:06d}"
        for seq in range(1, readings + 1):
            value = (
                b'{"device_id":"%s","seq":%d,"device_ts_ms":%d,"gateway_ts_ms":%d,"proto":"ibp1",'
                b'"payload":{"run":"bench","n":%d,"t":21.5}}' % (device_id.encode(), seq, now, now, seq)
            )
            out.append((device_id.encode(), value))
    return out


def start_broker(workdir: Path, partitions: int) -> tuple[KafkaBroker, int]:
    """A broker with a second listener DELAYED whose advertised address is the delay proxy's port."""
    broker = KafkaBroker(workdir=workdir, partitions=partitions, heap="1g")
    delayed, proxy_port = free_port(), free_port()
    h = broker.host
    broker.extra_properties = {
        "listeners": f"PLAINTEXT://{h}:{broker.port},CONTROLLER://{h}:{broker.controller_port},DELAYED://{h}:{delayed}",
        "advertised.listeners": f"PLAINTEXT://{h}:{broker.port},DELAYED://{h}:{proxy_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,DELAYED:PLAINTEXT",
    }
    broker.start()
    broker.delayed_port = delayed  # type: ignore[attr-defined]
    return broker, proxy_port


def start_proxy(listen_port: int, target_port: int, delay_ms: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.delay_proxy",
            "--listen",
            f"127.0.0.1:{listen_port}",
            "--target",
            f"127.0.0.1:{target_port}",
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    if "event=listening" not in line:
        proc.kill()
        raise RuntimeError(f"delay proxy did not start: {line!r}")
    return proc


def simulator_capacity(timeout_s: float) -> dict:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "harness", "capacity", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"python -m simulator capacity --json did not finish within {timeout_s:.0f}s"}
    except OSError as exc:
        return {"error": f"cannot run the simulator: {exc}"}
    if result.returncode != 0:
        return {"error": f"exit {result.returncode}: {(result.stderr or result.stdout)[-500:]}"}
    try:
        return json.loads(result.stdout)
    except ValueError:
        return {"error": f"not JSON: {result.stdout[-300:]}"}


async def gateway_run(
    bootstrap: str,
    topic: str,
    args: argparse.Namespace,
    workdir: Path,
    devices: int,
    readings: int,
    paced_fraction: float = 0.0,
    **kafka: object,
) -> dict:
    """One gateway started with the bench's settings (plus ``kafka`` overrides), measured, stopped; with
    ``paced_fraction``, also the ACK latency under a paced load at that fraction of the rate it reached
    (``half_load``: p50/p99 against linger + 2 x the mean Kafka produce time of the same window)."""
    run = GatewayRun(
        bootstrap,
        topic,
        workdir,
        udp={"workers": args.workers},
        kafka={
            "producers_per_worker": args.producers,
            "max_producers_per_worker": args.max_producers,
            "batch_size": args.batch_size,
            "linger_ms": args.linger_ms,
            **kafka,
        },
        limits={"max_inflight_readings": args.max_inflight},
    )
    try:
        result = await run.measure(devices, readings, args.batch)
        if paced_fraction and result["readings_per_s"] > 0:
            # the same gateway under a paced load at a fraction of what it just reached
            rate = paced_fraction * result["readings_per_s"]
            paced = await run.measure_paced(devices, args.batch, rate, args.paced_seconds)
            linger = args.linger_ms
            rtt = paced["produce_ms_mean"]
            paced["goal_p99_ms"] = None if rtt is None else round(linger + 2 * rtt, 1)
            paced["fraction_of_max"] = paced_fraction
            result["half_load"] = paced
    finally:
        code = run.stop()
    result["exit_code"] = code
    return result


async def phase(
    name: str,
    bootstrap: str,
    topic: str,
    args: argparse.Namespace,
    workdir: Path,
    devices: int,
    readings: int,
) -> dict:
    """The bare producers and the gateway against one listener; ``devices`` x ``readings``: the gateway's
    fleet and what each device sends (the bare producers send the same records)."""
    kafka = KafkaConfig(
        bootstrap_servers=bootstrap,
        topic=topic,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
        producers_per_worker=args.producers,
        max_producers_per_worker=args.max_producers,
    )
    records = make_records(devices, readings)
    out: dict = {"load_before": load_average()}
    print(f"[{name}] bare producer send() ...", flush=True)
    out["bare_send"] = await bare.run_send(kafka, records[: args.send_readings])  # a rate: a slice will do
    print(f"[{name}] bare producer send_batch() ...", flush=True)
    out["bare_batch"] = await bare.run_batch(kafka, records)
    del records
    print(f"[{name}] gateway end to end ...", flush=True)
    out["gateway"] = await gateway_run(
        bootstrap,
        topic,
        args,
        workdir / f"gateway-{name}",
        devices,
        readings,
        paced_fraction=0.5 if args.paced_seconds > 0 else 0.0,
    )
    if args.fast_level is not None and name == "no-latency":
        # the same run with lz4 at a level a user would pick for CPU (aiokafka's builder knows only 9)
        print(f"[{name}] gateway end to end, kafka.compression_level={args.fast_level} ...", flush=True)
        fast = await gateway_run(
            bootstrap,
            topic,
            args,
            workdir / f"gateway-{name}-level",
            devices,
            readings,
            compression_level=args.fast_level,
        )
        out["gateway_fast_level"] = fast | {"compression_level": args.fast_level}
    out["load_after"] = load_average()
    gw = out["gateway"]["readings_per_s"]
    ceiling = max(out["bare_send"]["readings_per_s"], out["bare_batch"]["readings_per_s"])
    out["gateway_readings_per_s"] = gw
    out["bare_producer_readings_per_s"] = ceiling
    out["ratio"] = round(gw / ceiling, 3) if ceiling else None
    send = out["bare_send"]["readings_per_s"]
    out["bare_send_readings_per_s"] = send
    out["ratio_vs_send"] = round(gw / send, 3) if send else None
    return out


async def main_async(args: argparse.Namespace) -> dict:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    workdir = ROOT / ".cache" / "bench" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "timestamp": stamp,
        "host": {"cpus": os.cpu_count(), "load_start": load_average()},
        "settings": vars(args) | {"delay_ms": args.delay_ms},
    }
    otel: tuple[Path | None, str] = (None, "disabled (--no-otelcol)")
    if args.peers and args.otelcol:
        print("[peers] building (or reusing) the OpenTelemetry Collector peer ...", flush=True)
        otel = otelcol.build()
    broker, proxy_port = start_broker(workdir / "kafka", args.partitions)
    proxy = None
    try:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic, partitions=args.partitions)
        proxy = start_proxy(proxy_port, broker.delayed_port, args.delay_ms)
        base = await phase("no-latency", broker.bootstrap, topic, args, workdir, args.devices, args.readings)
        report.update(
            {k: base[k] for k in ("gateway_readings_per_s", "bare_producer_readings_per_s", "ratio")}
        )
        report["no_latency"] = base
        if args.peers:
            records = make_records(args.devices, args.readings)
            report["peers"] = run_peers(broker.bootstrap, args, workdir, base, records, otel)
            del records
        if args.delay_ms > 0:
            slow = await phase(
                f"{args.delay_ms:g}ms",
                f"127.0.0.1:{proxy_port}",
                topic,
                args,
                workdir,
                args.latency_devices,
                latency_readings(args),
            )
            slow["vs_no_latency"] = round(slow["gateway_readings_per_s"] / base["gateway_readings_per_s"], 3)
            report["latency_250ms" if args.delay_ms == 250 else f"latency_{args.delay_ms:g}ms"] = slow
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(10)
        broker.stop(delete=True)
    if args.simulator:
        print("[simulator] python -m simulator capacity --json ...", flush=True)
        report["simulator"] = simulator_capacity(args.simulator_timeout)
    report["host"]["load_end"] = load_average()
    shutil.rmtree(workdir, ignore_errors=True)
    return report


def latency_readings(args: argparse.Namespace) -> int:
    """Readings per device of the slow-broker phase: ``--latency-readings``, or ``--readings``, so that each
    device makes as many round trips in both phases (16 batches of 25 by default).

    A stop-and-wait fleet runs in waves: every device sends its first batch at once, and the window ends
    with the slowest devices' last ACKs. Keeping the slow phase's *total* equal to the no-latency phase's
    (12,000 devices x 133 readings: 5 round trips each) made those two waves a third of its window, and
    the figure measured them: 321,272-357,088 acked/s at 250 ms on 2026-12-07, where the same fleet making
    16 round trips each acked 511,273/s (0.81 of that run's no-latency figure)."""
    if args.latency_readings > 0:
        return int(args.latency_readings)
    return int(args.readings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4000)
    parser.add_argument(
        "--readings",
        type=int,
        default=400,
        help="readings per device: 4,000 x 400 = 1.6 M, about 3 s of the gateway here, so its start and the "
        "last batches' linger are a small part of the window (at 100, a 0.8 s window, they made the CPU per "
        "reading about 15 %% higher and the runs scatter by 20 %%)",
    )
    parser.add_argument("--batch", type=int, default=25, help="readings per datagram")
    parser.add_argument(
        "--latency-readings",
        type=int,
        default=0,
        help="readings per device of the slow-broker phase; 0: --readings (as many round trips per device as "
        "the no-latency phase)",
    )
    parser.add_argument(
        "--send-readings",
        type=int,
        default=400_000,
        help="readings for the bare send() rate (one coroutine per record: slow, a slice of the records)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--latency-devices",
        type=int,
        default=12_000,
        help="the fleet of the slow-broker phase: stop-and-wait devices keep at most devices x batch readings "
        "in flight, and the rate is at most that over the ack time (Little's law: 4,000 x 25 readings over "
        "~0.5 s caps near 200,000/s), so a slow broker needs a larger fleet to be the limit",
    )
    parser.add_argument(
        "--producers", type=int, default=2, help="producers per worker (kafka.producers_per_worker)"
    )
    parser.add_argument(
        "--max-producers",
        type=int,
        default=8,
        help="kafka.max_producers_per_worker: extra producers that take full batches while the others are busy",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=LimitsConfig().max_inflight_readings,
        help="the gateway's limits.max_inflight_readings (readings not yet acked by Kafka; beyond: BUSY)",
    )
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=262144)
    parser.add_argument("--linger-ms", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=250.0, help="injected broker latency; 0 skips it")
    parser.add_argument(
        "--paced-seconds",
        type=float,
        default=4.0,
        help="seconds of a paced load at half the gateway's measured rate, for its ACK latency (0 skips)",
    )
    parser.add_argument(
        "--fast-level",
        type=int,
        default=1,
        help="also run the gateway with kafka.compression_level at this lz4 level (-1 skips; the main runs keep "
        "aiokafka's level 9, as the bare producer)",
    )
    parser.add_argument("--no-simulator", dest="simulator", action="store_false")
    parser.add_argument("--simulator-timeout", type=float, default=600.0)
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="skip bench/peers")
    parser.add_argument("--no-otelcol", dest="otelcol", action="store_false", help="skip the collector peer")
    parser.add_argument(
        "--peer-rates",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[50_000, 150_000, 200_000],
        help="legacy one-reading datagrams per second, comma-separated",
    )
    parser.add_argument("--peer-seconds", type=float, default=10.0, help="seconds of load per peer and rate")
    parser.add_argument(
        "--peer-batched-rate",
        type=int,
        default=32_000,
        help="batched IBP/1 datagrams per second (0 skips): 32,000 x 25 = 800,000 readings/s, above the gateway's "
        "acked rate, so a peer's row is what it can take (at 16,000/s rsyslog landed everything offered)",
    )
    parser.add_argument(
        "--peer-rcvbuf",
        type=int,
        default=int(Path("/proc/sys/net/core/rmem_max").read_text()),
        help="UDP receive buffer of every peer that sets one (default net.core.rmem_max, what an unprivileged "
        "rsyslogd can get)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    if args.fast_level is not None and args.fast_level < 0:
        args.fast_level = None
    try:
        import uvloop

        report = uvloop.run(main_async(args))
    except ImportError:
        report = asyncio.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{report['timestamp']}.json"
    report["settings"]["out"] = str(args.out)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_table(report)
    if "peers" in report:
        print_peers(report["peers"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
