"""``python -m simulator capacity --json``: how many devices one simulator process holds at 1 reading/s,
and how fast it flushes a backlog, against a local acking UDP sink (its own process) or a real gateway.

A device count *holds* when, over the measured seconds, at least 98 % of the readings due were acked
and no generation tick ran more than 250 ms late. Counts are tried in increasing steps until one fails.
The CPU time per reading is measured too (process time), so ``projected_devices_per_core`` says what a
core given to the simulator alone would hold; on a shared, overloaded machine the measured count is lower.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import subprocess
import sys
import time
from typing import Any

from simulator.devices.fleet import Fleet
from simulator.scenario import Devices, Flush, Phase, Scenario, Transport

STEPS = (5000, 10000, 20000, 40000, 60000, 80000, 100000, 120000, 135000, 150000, 175000, 200000)
GOAL_DEVICES_AT_1HZ = 200_000
GOAL_FLUSH_READINGS_PER_S = 1_000_000
FLUSH_DEVICES, FLUSH_PER_DEVICE = 20_000, 64  # a 1,280,000-reading backlog


def _rss() -> int:
    """This process's resident set size in bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _scenario(devices: int, batch: int = 32) -> Scenario:
    return Scenario(
        name="capacity",
        devices=Devices(count=devices, buffer_capacity=100_000),
        transport=Transport(sockets=64, ack_timeout_ms=2000),
        flush=Flush(batch_size=batch, max_datagrams_per_s=100_000, jitter_ms=0),
        phases=[Phase(name="normal", kind="normal", duration_s=1)],
    )


async def steady(host: str, port: int, key: bytes, devices: int, seconds: float = 8.0) -> dict[str, Any]:
    fleet = Fleet(_scenario(devices), host, port, "capacity", key)
    await fleet.open()
    driver = asyncio.create_task(fleet.run())
    try:
        await asyncio.sleep(2.0)  # warm-up: every slot has fired once
        c0, t0, cpu0 = fleet.counters.acked, time.monotonic(), time.process_time()
        lag_from = len(fleet.samples)
        await asyncio.sleep(seconds)
        c1, t1, cpu1 = fleet.counters.acked, time.monotonic(), time.process_time()
        lags = [s.lag_ms for s in fleet.samples[lag_from:]]
    finally:
        fleet.stop()
        await driver
        fleet.close()
    rate = (c1 - c0) / (t1 - t0)
    worst = max(lags, default=0.0)
    cpu_us = (cpu1 - cpu0) / max(1, c1 - c0) * 1e6
    return {
        "devices": devices,
        "acked_per_s": round(rate),
        "cpu_share": round((cpu1 - cpu0) / (t1 - t0), 3),
        "cpu_us_per_reading": round(cpu_us, 1),
        "max_tick_lag_ms": worst,
        "holds": rate >= 0.98 * devices and worst <= 250,
    }


async def flush(
    host: str, port: int, key: bytes, devices: int, per_device: int, batch: int
) -> dict[str, Any]:
    gc.collect()
    rss0 = _rss()
    fleet = Fleet(_scenario(devices, batch), host, port, "capacity", key)
    rss1 = _rss()
    await fleet.open()
    fleet.generating = False
    fleet.set_online(False)
    now = time.monotonic()
    ts0 = int(time.time() * 1000)
    stamps = [ts0 + i * 1000 for i in range(per_device)]  # one int per generation slot, as in a run
    for dev in fleet.devices:
        for ts in stamps:
            fleet._new_reading(dev, ts, now)  # pre-fill the buffers as an outage would
    rss2 = _rss()
    driver = asyncio.create_task(fleet.run())
    try:
        d0 = fleet.counters.datagrams
        cpu0 = time.process_time()
        start = time.monotonic()
        fleet.set_online(True)
        deadline = start + 120
        while fleet.buffered > 0 and time.monotonic() < deadline:  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.01)
        took = time.monotonic() - start
        cpu = time.process_time() - cpu0
        send_path = fleet.send_path()
    finally:
        fleet.stop()
        await driver
        fleet.close()
    total = devices * per_device
    return {
        "devices": devices,
        "readings": total,
        "drained": fleet.buffered == 0,
        "seconds": round(took, 3),
        "readings_per_s": round((total - fleet.buffered) / took),
        "datagrams_per_s": round((fleet.counters.datagrams - d0) / took),
        "batch_size": batch,
        # what really goes into a datagram: batch_size, or fewer when flush.max_datagram_bytes caps it
        "readings_per_datagram": fleet.full_batch(),
        "retransmits": fleet.counters.retransmits,
        "cpu_us_per_reading": round(cpu / max(1, total - fleet.buffered) * 1e6, 2),
        # resident memory: the fleet's devices (ids, keys, buffers, slots) and then its pre-filled backlog
        # (a pointer per reading in the device's deque; a timestamp int is shared by the devices of one
        # generation slot, as in a run)
        "rss_bytes_per_device": round((rss1 - rss0) / devices),
        "rss_bytes_per_buffered_reading": round((rss2 - rss1) / total, 1),
        "codec": "native" if fleet.native is not None else "python",
        "send_path": send_path,  # segmented (UDP GSO), sendmmsg or transport: Fleet.send_path
    }


def start_sink(key: bytes) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, IBP_MASTER_KEY=key.hex())
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "sink", "--port", "0"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "udp_port=" not in line:
        proc.kill()
        raise RuntimeError(f"the ack sink did not start: {line!r}")
    return proc, int(line.split("udp_port=")[1].split()[0])


async def measure(host: str | None, port: int | None, key: bytes | None, max_devices: int) -> dict[str, Any]:
    sink = None
    if host is None or port is None or key is None:
        key = secrets.token_bytes(32)
        sink, port = start_sink(key)
        host, target = "127.0.0.1", "local ack sink (separate process)"
    else:
        target = f"gateway {host}:{port}"
    try:
        # the flush first: its memory figures need a process whose heap no larger fleet has grown yet
        fl = await flush(host, port, key, FLUSH_DEVICES, FLUSH_PER_DEVICE, 32)
        trials = []
        best = 0
        for n in STEPS:
            if n > max_devices:
                break
            r = await steady(host, port, key, n)
            trials.append(r)
            if not r["holds"]:
                break
            best = n
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    cheapest = min((t["cpu_us_per_reading"] for t in trials if t["acked_per_s"]), default=0)
    return {
        "component": "simulator",
        "target": target,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "max_devices_at_1hz": best,
        # what one core fully given to the simulator would hold at the measured CPU cost per reading
        "projected_devices_per_core": round(1e6 / cheapest) if cheapest else None,
        "goal_devices_at_1hz": GOAL_DEVICES_AT_1HZ,
        "goal_flush_readings_per_s": GOAL_FLUSH_READINGS_PER_S,
        "codec": fl["codec"],
        "send_path": fl["send_path"],
        "steady_trials": trials,
        "peak_flush_datagrams_per_s": fl["datagrams_per_s"],
        "peak_flush_readings_per_s": fl["readings_per_s"],
        "flush_trial": fl,
    }
