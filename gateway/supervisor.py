"""The gateway's main process: binds the sockets, runs N workers, serves HTTP, handles SIGTERM.

- Binds one UDP socket per worker on the same port with SO_REUSEPORT (the kernel hashes each source
  address to one socket, so a device stays on one worker and its high-water mark in one place) and hands
  each to a worker process as an inherited descriptor. The supervisor keeps its copies open: a crashed
  worker is restarted on the same socket and datagrams queued meanwhile are not lost to a closed socket.
- Serves /metrics (every worker aggregated through prometheus_client's multiprocess mode, plus the
  kernel drop counters), /healthz (alive) and /readyz (every worker connected to Kafka) on one port.
- SIGTERM/SIGINT: forwards SIGTERM to the workers, waits for them to drain, exits 0.
- SIGHUP: reloads the key registry without a restart. The supervisor validates the file itself; a bad
  one is refused with an error naming the problem and the registry in use stays. A good one is copied
  into the supervisor's private run directory, which is the only registry the workers ever read (so a
  worker restarted later gets the same last good registry, never a half-edited file), and SIGHUP is
  forwarded to every worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_mp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway import hotpath, udpstats
from gateway.config import GatewayConfig
from gateway.http import HttpServer
from gateway.logs import log_event
from gateway.registry import RegistryError, parse_registry, read_registry_text
from gateway.udp_io import set_rcvbuf
from gateway.worker import CONFIG_ENV

RESTART_DELAY_S = 1.0


def bind_udp_sockets(cfg: GatewayConfig, count: int) -> list[socket.socket]:
    """``count`` UDP sockets on one port with SO_REUSEPORT and a large receive buffer."""
    family = socket.AF_INET6 if ":" in cfg.udp.host else socket.AF_INET
    port = cfg.udp.port
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_DGRAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            set_rcvbuf(s, cfg.udp.rcvbuf_bytes)
            s.bind((cfg.udp.host, port))
            port = s.getsockname()[1]
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


class _Collector:
    """Supervisor-owned metrics: kernel drops, readiness, live workers."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "iot_udp_receive_buffer_errors",
            "Datagrams the kernel dropped on the gateway's sockets (receive buffer full), /proc/net/udp drops",
            value=udpstats.socket_drops(self.sup.udp_port),
        )
        host = udpstats.host_rcvbuf_errors()
        if host is not None:
            yield CounterMetricFamily(
                "iot_udp_host_rcvbuf_errors",
                "Udp RcvbufErrors of the whole network namespace (/proc/net/snmp)",
                value=host,
            )
        yield GaugeMetricFamily(
            "iot_gateway_ready", "1 when every worker is connected to Kafka", value=self.sup.ready
        )
        yield GaugeMetricFamily("iot_gateway_workers", "Worker processes running", value=self.sup.alive)
        yield CounterMetricFamily(
            "iot_registry_reload_rejected",
            "SIGHUP reloads refused by the supervisor because the registry file did not validate",
            value=self.sup.reloads_rejected,
        )


class Supervisor:
    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.workers = cfg.effective_workers()
        self.udp_port = 0
        self.http_port = 0
        self.procs: list[asyncio.subprocess.Process | None] = [None] * self.workers
        self.worker_ready = [False] * self.workers
        self.stopping = False
        self.exit_code = 0
        self._status_buf = b""
        self.reloads_rejected = 0
        self.registry_copy: Path | None = None

    @property
    def ready(self) -> int:
        return int(not self.stopping and all(self.worker_ready) and self.alive == self.workers)

    @property
    def alive(self) -> int:
        return sum(1 for p in self.procs if p is not None and p.returncode is None)

    # ------------------------------------------------------------ HTTP routes

    def _metrics(self) -> tuple[int, str, bytes]:
        registry = CollectorRegistry()
        prom_mp.MultiProcessCollector(registry, path=self.prom_dir)
        registry.register(_Collector(self))
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    def _healthz(self) -> tuple[int, str, bytes]:
        return 200, "text/plain", f"alive workers={self.alive}/{self.workers} codec={hotpath.IMPL}\n".encode()

    def _readyz(self) -> tuple[int, str, bytes]:
        ready = sum(self.worker_ready)
        if self.ready:
            return 200, "text/plain", f"ready workers={ready}/{self.workers}\n".encode()
        return (
            503,
            "text/plain",
            f"not ready workers={ready}/{self.workers} stopping={self.stopping}\n".encode(),
        )

    # ------------------------------------------------------------ workers

    def _on_status(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        self._status_buf += chunk
        *lines, self._status_buf = self._status_buf.split(b"\n")
        for line in lines:
            index, _, state = line.decode(errors="replace").partition(" ")
            if index.isdigit() and int(index) < self.workers:
                self.worker_ready[int(index)] = state == "ready"

    async def _spawn(self, index: int, sock: socket.socket, status_w: int) -> asyncio.subprocess.Process:
        env = dict(os.environ)
        env["PROMETHEUS_MULTIPROC_DIR"] = self.prom_dir
        worker_cfg = self.cfg.to_dict()
        if self.registry_copy is not None:
            worker_cfg["devices"]["registry"] = str(self.registry_copy)
        env[CONFIG_ENV] = json.dumps(worker_cfg)
        # SIGHUP blocked across fork and exec (a blocked mask is inherited): a reload racing this start
        # stays pending until the worker has its handler, instead of killing it with the default action.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway.worker",
                "--index",
                str(index),
                "--fd",
                str(sock.fileno()),
                "--status-fd",
                str(status_w),
                pass_fds=(sock.fileno(), status_w),
                env=env,
            )
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        log_event("worker_started", worker=index, pid=proc.pid)
        return proc

    async def _keep_running(self, index: int, sock: socket.socket, status_w: int) -> None:
        while True:
            proc = await self._spawn(index, sock, status_w)
            self.procs[index] = proc
            code = await proc.wait()
            self.worker_ready[index] = False
            prom_mp.mark_process_dead(proc.pid, self.prom_dir)
            if self.stopping:
                if code != 0:
                    log_event("worker_exit", logging.ERROR, worker=index, pid=proc.pid, code=code)
                    self.exit_code = 1
                return
            log_event(
                "worker_died", logging.ERROR, worker=index, pid=proc.pid, code=code, restart_s=RESTART_DELAY_S
            )
            await asyncio.sleep(RESTART_DELAY_S)

    # ------------------------------------------------------------ key registry

    def _install_registry(self, copy: Path) -> tuple[int, int]:
        """Validate the configured registry file and copy it to ``copy`` for the workers; RegistryError if
        bad."""
        source = self.cfg.devices.registry
        if source is None:
            raise RegistryError("devices.registry is null: there is no registry to install")
        text = read_registry_text(source)
        registry = parse_registry(text, source)
        tmp = copy.with_name("devices.yml.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, copy)
        return len(registry.devices), len(registry.fleets)

    def _reload(self) -> None:
        if self.stopping:
            return
        if self.registry_copy is None:
            log_event("registry_reload_skipped", logging.WARNING, reason="devices.registry is null")
            return
        try:
            devices, fleets = self._install_registry(self.registry_copy)
        except RegistryError as exc:
            self.reloads_rejected += 1
            log_event(
                "registry_reload_failed",
                logging.ERROR,
                error=str(exc),
                kept="previous registry",
            )
            return
        signalled = 0
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGHUP)
                signalled += 1
        log_event("registry_reloaded", devices=devices, fleets=fleets, workers=signalled)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.prom_dir = tempfile.mkdtemp(prefix="iot-gateway-prom-")
        self.run_dir = tempfile.mkdtemp(prefix="iot-gateway-run-")  # 0700: holds the key registry copy
        if self.cfg.devices.registry is not None:
            self.registry_copy = Path(self.run_dir) / "devices.yml"
            # validated by __main__ already; a failure here is a real error
            self._install_registry(self.registry_copy)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        socks = bind_udp_sockets(self.cfg, self.workers)
        self.udp_port = socks[0].getsockname()[1]
        http = HttpServer({"/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz})
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        loop.add_reader(status_r, self._on_status, status_r)
        tasks: list[asyncio.Task[None]] = []
        try:
            self.http_port = await http.start(self.cfg.http.host, self.cfg.http.port)
            log_event(
                "listening",
                udp_port=self.udp_port,
                http_port=self.http_port,
                workers=self.workers,
                rcvbuf_bytes=socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                kafka=self.cfg.kafka.bootstrap_servers,
                topic=self.cfg.kafka.topic,
                state_dir=self.cfg.state.dir or "none",
                codec=hotpath.IMPL,
                codec_why=hotpath.WHY,
            )
            legacy = [n for n in ("legacy_binary", "legacy_json") if getattr(self.cfg.devices, n)]
            if legacy:
                # the pilot's formats carry no authentication: say so every start, where operators look
                log_event(
                    "legacy_input_enabled",
                    logging.WARNING,
                    formats=",".join(legacy),
                    udp_port=self.udp_port,
                    detail="unauthenticated: anyone who reaches this UDP port can write records; "
                    "set devices.legacy_binary/legacy_json false to accept IBP/1 only",
                )
            tasks = [
                asyncio.create_task(self._keep_running(i, socks[i], status_w)) for i in range(self.workers)
            ]
            await stop.wait()
            self.stopping = True
            log_event("shutdown", signal="SIGTERM", workers=self.alive)
            for proc in self.procs:
                if proc is not None and proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            grace = self.cfg.kafka.request_timeout_ms / 1000.0 + 15.0
            _, pending = await asyncio.wait(tasks, timeout=grace)
            if pending:
                log_event("worker_kill", logging.ERROR, workers=len(pending), grace_s=grace)
                self.exit_code = 1
                for proc in self.procs:
                    if proc is not None and proc.returncode is None:
                        proc.kill()
                await asyncio.wait(tasks)
        finally:
            for task in tasks:
                task.cancel()
            loop.remove_reader(status_r)
            os.close(status_r)
            os.close(status_w)
            await http.stop()
            for s in socks:
                s.close()
            shutil.rmtree(self.prom_dir, ignore_errors=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)
        log_event("exited", code=self.exit_code)
        return self.exit_code
