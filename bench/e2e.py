"""Gateway end to end: a loadgen fleet (stop-and-wait devices) -> gateway workers -> Kafka -> ACKs."""

from __future__ import annotations

import asyncio
import math
import resource
import statistics
import uuid
from pathlib import Path

from bench.cpu import tree_cpu_s
from gateway.metrics import FLUSH_INTERVAL_S as metrics_flush_s
from harness.gateway import start_gateway
from harness.loadgen import Fleet, fleet_keys


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The upper bound of the histogram bucket that holds quantile ``q`` of what was observed between two
    scrapes (cumulative counts by ``le``); None when nothing was observed. Coarse (the gateway's latency
    buckets are 1, 2, 5, 10, 20, 50, 100, 200, ... ms), but it says on which side of a bound the tail is."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, count in zip(bounds, counts, strict=True):
        if count >= q * counts[-1]:
            return bound
    return bounds[-1]


def prepare_fleet(
    host: str, port: int, master_key: bytes, devices: int, readings: int, batch: int, interval_s: float = 0.0
) -> Fleet:
    """A loadgen fleet with every datagram encoded in advance (outside the measured run); with ``interval_s``,
    paced (a new batch per device at most every ``interval_s``, first sends spread over one interval)."""
    run = uuid.uuid4().hex[:8]
    keys = fleet_keys(master_key, devices, run)
    fleet = Fleet(
        host,
        port,
        keys,
        readings_per_device=readings,
        batch=batch,
        run_id=run,
        sockets=64,
        ack_timeout_s=5.0,
        interval_s=interval_s,
        ramp_s=interval_s,
    )
    fleet.prebuild()
    return fleet


async def run_fleet(fleet: Fleet, devices: int, readings: int) -> dict:
    result = await fleet.run(timeout_s=300)
    lat_ms = [x * 1000.0 for x in result.ack_latencies_s]
    return {
        "devices": devices,
        "readings": result.readings,
        "expected_readings": devices * readings,
        "fully_acked_devices": result.fully_acked,
        "elapsed_s": round(result.elapsed_s, 3),
        "readings_per_s": round(result.acked_readings_per_s, 1),
        "datagrams_sent": result.datagrams_sent,
        "retransmissions": result.retransmissions,
        "busy": result.busy,
        "ack_latency_ms": {
            "p50": round(percentile(lat_ms, 0.50), 1),
            "p90": round(percentile(lat_ms, 0.90), 1),
            "p99": round(percentile(lat_ms, 0.99), 1),
            "p999": round(percentile(lat_ms, 0.999), 1),
            "max": round(max(lat_ms), 1) if lat_ms else None,
            "mean": round(statistics.fmean(lat_ms), 1) if lat_ms else None,
        },
    }


class GatewayRun:
    """Start a gateway, measure one fleet run against it (CPU of the whole process tree), stop it."""

    def __init__(self, bootstrap: str, topic: str, workdir: Path, **overrides: dict) -> None:
        self.gw = start_gateway(bootstrap, topic, workdir, **overrides)

    async def measure(self, devices: int, readings: int, batch: int) -> dict:
        gw = self.gw
        # warm-up: connections, metadata and partition caches, a first batch per partition
        warm = prepare_fleet("127.0.0.1", gw.udp_port, gw.master_key, 200, batch, batch)
        await run_fleet(warm, 200, batch)
        prep0 = _own_cpu_s()
        fleet = prepare_fleet("127.0.0.1", gw.udp_port, gw.master_key, devices, readings, batch)
        cpu0, own0 = tree_cpu_s(gw.process.pid), _own_cpu_s()
        result = await run_fleet(fleet, devices, readings)
        cpu, own = tree_cpu_s(gw.process.pid) - cpu0, _own_cpu_s() - own0
        # the sender's CPU in the measured window (sends, waits, ACK checks), next to the gateway's; the
        # datagrams were encoded before it (loadgen_prepare_cpu_s)
        result["loadgen_cpu_s"] = round(own, 2)
        result["loadgen_cpu_s_per_100k"] = round(own / max(1, result["readings"]) * 100_000, 3)
        result["loadgen_prepare_cpu_s"] = round(own0 - prep0, 2)
        result["gateway_cpu_s_per_100k"] = round(cpu / max(1, result["readings"]) * 100_000, 3)
        result["gateway_cpu_s"] = round(cpu, 2)
        result["kernel_udp_drops"] = gw.metric("iot_udp_receive_buffer_errors_total")
        result["busy_sent"] = gw.metric("iot_busy_sent_total")
        result["produce_errors"] = gw.metric("iot_produce_errors_total")
        return result

    async def measure_paced(self, devices: int, batch: int, rate: float, seconds: float) -> dict:
        """ACK latency under a paced load of ``rate`` readings/s for about ``seconds`` (``devices`` devices, one
        batch each per interval), with the gateway's mean Kafka produce time over the same window: the issue's
        "linger + 2 broker round trips" is measured against that."""
        gw = self.gw
        interval = devices * batch / rate
        rounds = max(2, math.ceil(seconds / interval))
        fleet = prepare_fleet(
            "127.0.0.1", gw.udp_port, gw.master_key, devices, rounds * batch, batch, interval
        )
        names = ("iot_produce_latency_ms", "iot_ack_latency_ms")  # Kafka produce; received -> ACK sent
        before = gw.histograms(*names)
        result = await run_fleet(fleet, devices, rounds * batch)
        await asyncio.sleep(2 * metrics_flush_s)  # the workers publish their histograms every 0.2 s
        after = gw.histograms(*names)
        produce, produce0 = after[names[0]], before[names[0]]
        batches = produce.count - produce0.count
        produce_ms = (produce.sum - produce0.sum) / batches if batches else None
        result.update(
            {
                "offered_readings_per_s": round(rate, 1),
                "interval_s": round(interval, 3),
                "kafka_batches": int(batches),
                "produce_ms_mean": None if produce_ms is None else round(produce_ms, 1),
                # where the tail is: the gateway's own histograms' p99 bucket (upper bound, ms) of the
                # Kafka produce time and of datagram received -> ACK sent, next to the devices' p99
                "produce_ms_p99_bucket": bucket_quantile(produce0.buckets, produce.buckets, 0.99),
                "gateway_ack_ms_p99_bucket": bucket_quantile(
                    before[names[1]].buckets, after[names[1]].buckets, 0.99
                ),
            }
        )
        return result

    def stop(self) -> int:
        return self.gw.stop()
