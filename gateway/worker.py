"""One worker process: its own event loop (uvloop when installed), UDP socket share, producers, metrics.

Started by the supervisor as ``python -m gateway.worker --index I --fd F --status-fd S`` with the validated
config as JSON in ``$IOT_GATEWAY_WORKER_CONFIG``. The UDP socket (bound by the supervisor with
SO_REUSEPORT) arrives as an inherited file descriptor. The worker reports readiness on the status pipe
(``"<index> ready"`` / ``"<index> notready"`` lines).

SIGTERM: stop taking datagrams, seal and flush every open batch, send the ACKs for what Kafka committed,
fold the high-water-mark log into its snapshot (``state.dir``), stop the producers, exit 0.

SIGHUP: reload the key registry from ``devices.registry``, which the supervisor points at its own copy of
the last registry that validated; a file that fails to load keeps the registry in use. The supervisor
starts workers with SIGHUP blocked, and the worker unblocks it once its handler is installed, so a
reload that races a (re)start cannot kill the worker with SIGHUP's default action.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

from gateway import config as config_mod
from gateway import hotpath, logs
from gateway import metrics as metrics_mod
from gateway.handler import DatagramHandler
from gateway.hwmstore import HwmStore
from gateway.kafka_out import KafkaOut
from gateway.logs import log_event
from gateway.registry import KeyRegistry, RegistryError, load_registry
from gateway.udp_io import UdpIO, open_udp

CONFIG_ENV = "IOT_GATEWAY_WORKER_CONFIG"


@dataclass
class _Current:
    """What a SIGHUP reload swaps: the registry, and the handler once it exists."""

    registry: KeyRegistry
    handler: DatagramHandler | None = None


class _Status:
    def __init__(self, fd: int | None, index: int) -> None:
        self.fd, self.index = fd, index
        self.ready: bool | None = None  # unknown until the first set()

    def set(self, ready: bool) -> None:
        if ready == self.ready:
            return
        self.ready = ready
        if self.fd is not None:
            try:
                os.write(self.fd, f"{self.index} {'ready' if ready else 'notready'}\n".encode())
            except OSError:
                pass


async def _start_kafka(kafka: KafkaOut, stop: asyncio.Event) -> bool:
    delay = 0.5
    while not stop.is_set():
        try:
            await kafka.start()
            return True
        except Exception as exc:
            log_event(
                "kafka_unavailable",
                logging.WARNING,
                bootstrap=kafka.cfg.bootstrap_servers,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                retry_s=delay,
            )
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 5.0)
    return False


GC_GEN0_THRESHOLD = 50_000


def _tune_gc() -> None:
    """Collect less often: each datagram allocates a few container objects (its job, record tuples) that
    live until Kafka acks them, and at 100,000+ datagrams/s the default young-generation threshold (2,000
    allocations) ran a collection every few milliseconds, each walking the thousands of jobs in flight.
    The heap built at start (modules, config, registry) is frozen out of the collector's walks. The
    gateway keeps no reference cycles on the datagram path, so the collector is a safety net here."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


async def run(cfg: config_mod.GatewayConfig, index: int, fd: int, status_fd: int | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    status = _Status(status_fd, index)
    m = metrics_mod.create()
    current = _Current(KeyRegistry())

    def reload_registry(first: bool = False) -> None:
        try:
            registry = load_registry(cfg.devices.registry)
        except RegistryError as exc:
            if first:
                raise
            m.registry_reloads["failed"].inc()
            log_event("registry_reload_failed", logging.ERROR, error=str(exc), kept="previous registry")
            return
        current.registry = registry
        if current.handler is not None:
            current.handler.reload_registry(registry)
        if not first:
            m.registry_reloads["ok"].inc()
            m.flush()
            log_event("registry_reloaded", devices=len(registry.devices), fleets=len(registry.fleets))

    loop.add_signal_handler(signal.SIGHUP, reload_registry)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    reload_registry(first=True)
    store: HwmStore | None = None
    marks: dict[bytes, int] = {}
    if cfg.state.dir is not None:
        store = HwmStore(
            cfg.state.dir, index, cfg.effective_workers(), cfg.state.fsync_interval_s, cfg.state.compact_bytes
        )
        marks = store.load()

    def on_batch(records: int, seconds: float, ok: bool) -> None:
        m.produce_latency.observe(seconds * 1000.0)
        m.kafka_batch_records.observe(records)
        status.set(ok)

    kafka = KafkaOut(cfg.kafka, f"iot-gateway-w{index}", on_batch)
    if not await _start_kafka(kafka, stop):
        log_event("stopped", reason="signal before Kafka was reachable")
        return 0
    sock = socket.socket(fileno=fd)
    workers = cfg.effective_workers()
    udp: UdpIO  # bound below, before the first datagram can be answered
    handler = DatagramHandler(
        registry=current.registry,
        kafka=kafka,
        metrics=m,
        send=lambda datagram, addr: udp.sendto(datagram, addr),
        max_datagram_bytes=cfg.udp.max_datagram_bytes,
        max_inflight=max(255, -(-cfg.limits.max_inflight_readings // workers)),
        busy_retry_after_ms=cfg.limits.busy_retry_after_ms,
        # per source address for the whole gateway: each worker takes its share of the rate
        auth_fail_per_s=cfg.limits.auth_fail_per_s / workers,
        regression_window=cfg.limits.regression_window,
        legacy_binary=cfg.devices.legacy_binary,
        legacy_json=cfg.devices.legacy_json,
        store=store,
        marks=marks,
    )
    current.handler = handler
    kafka.on_settled = handler.settle
    _tune_gc()
    udp = await open_udp(loop, sock, handler.handle, cfg.udp.max_datagram_bytes)
    log_event(
        "worker_ready",
        partitions=len(kafka._partitions),
        producers=cfg.kafka.producers_per_worker,
        max_producers=max(cfg.kafka.producers_per_worker, cfg.kafka.max_producers_per_worker),
        loop=type(loop).__module__.split(".")[0],
        max_inflight=handler.max_inflight,
        codec=hotpath.IMPL,
        receive=type(udp).__name__,
    )
    status.set(True)
    maintain = loop.create_task(store.maintain(handler.hwms, stop)) if store is not None else None
    window = cfg.limits.active_device_window_s
    tick = 0
    while not stop.is_set():
        if tick % 10 == 0:
            m.active_devices.set(handler.active_devices(window))
        m.flush()
        tick += 1
        try:
            await asyncio.wait_for(stop.wait(), metrics_mod.FLUSH_INTERVAL_S)
        except TimeoutError:
            pass
    handler.accepting = False
    inflight = handler.inflight
    log_event("draining", inflight_readings=inflight, batches=kafka.batches_in_flight)
    try:
        await asyncio.wait_for(kafka.drain(), cfg.kafka.request_timeout_ms / 1000.0 + 5.0)
    except TimeoutError:
        log_event("drain_timeout", logging.WARNING, inflight_readings=handler.inflight)
    udp.close()
    if maintain is not None:
        await maintain
    if store is not None:
        try:
            await store.close(handler.hwms)
        except OSError as exc:  # the log written so far still holds every mark: only the fold failed
            log_event("state_close_failed", logging.ERROR, dir=str(store.dir), error=str(exc))
    await kafka.stop()
    status.set(False)
    m.flush()
    log_event("stopped", acked_during_drain=inflight - handler.inflight, unacked=handler.inflight)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--status-fd", type=int)
    args = parser.parse_args(argv)
    cfg = config_mod.from_dict(json.loads(os.environ[CONFIG_ENV]))
    logs.setup(cfg.log.level, f"worker-{args.index}")
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(cfg, args.index, args.fd, args.status_fd))
    return uvloop.run(run(cfg, args.index, args.fd, args.status_fd))


if __name__ == "__main__":
    sys.exit(main())
