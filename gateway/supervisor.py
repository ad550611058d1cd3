"""The gateway's main process: binds the sockets, runs N workers, serves HTTP, handles SIGTERM.

- Binds one UDP socket per worker on the same port with SO_REUSEPORT (the kernel hashes each source
  address to one socket, so a device stays on one worker and its high-water mark in one place) and hands
  each to a worker process as an inherited descriptor. The supervisor keeps its copies open: a crashed
  worker is restarted on the same socket and datagrams queued meanwhile are not lost to a closed socket.
- Serves /metrics (every worker aggregated through prometheus_client's multiprocess mode, plus the
  kernel drop counters), /healthz (alive) and /readyz (every worker connected to Kafka) on one port.
- SIGTERM/SIGINT: forwards SIGTERM to the workers, waits for them to drain, exits 0.
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

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_mp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway import udpstats
from gateway.config import GatewayConfig
from gateway.http import HttpServer
from gateway.logs import log_event
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
            _set_rcvbuf(s, cfg.udp.rcvbuf_bytes)
            s.bind((cfg.udp.host, port))
            port = s.getsockname()[1]
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def _set_rcvbuf(s: socket.socket, size: int) -> None:
    # SO_RCVBUFFORCE (root / CAP_NET_ADMIN) goes beyond net.core.rmem_max; otherwise the kernel caps it.
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None:
        try:
            s.setsockopt(socket.SOL_SOCKET, force, size)
            return
        except PermissionError:
            pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class _Collector:
    """Supervisor-owned metrics: kernel drops, readiness, live workers."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def collect(self):
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
        return 200, "text/plain", f"alive workers={self.alive}/{self.workers}\n".encode()

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
        env[CONFIG_ENV] = json.dumps(self.cfg.to_dict())
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

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.prom_dir = tempfile.mkdtemp(prefix="iot-gateway-prom-")
        socks = bind_udp_sockets(self.cfg, self.workers)
        self.udp_port = socks[0].getsockname()[1]
        http = HttpServer({"/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz})
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        loop.add_reader(status_r, self._on_status, status_r)
        tasks: list[asyncio.Task] = []
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
        log_event("exited", code=self.exit_code)
        return self.exit_code
