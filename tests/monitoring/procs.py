"""A real Prometheus and node_exporter (Debian's binaries) on free loopback ports, for the tests.

``Prometheus.start()`` writes the given config into its own directory, launches ``prometheus`` with
its data there and waits for ``/-/ready``; ``query`` / ``query_range`` / ``get`` call its HTTP API.
``stop()`` sends SIGTERM and waits. Both raise ``MonitoringProcessError`` naming what to look at.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.kafka import free_port


class MonitoringProcessError(RuntimeError):
    """Prometheus or node_exporter could not be started or queried; the message says why."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MonitoringProcessError(f"{name} is not installed: run `make setup` (Debian package {name})")
    return path


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MonitoringProcessError(f"{proc.args[0]} exited with {proc.returncode}; log:\n{_tail(log)}")
        try:
            http_get(url, timeout=1.0)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise MonitoringProcessError(f"{url} did not answer within {timeout:.0f}s; log:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class NodeExporter:
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.port = self.port or free_port(self.host)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> NodeExporter:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / "node_exporter.log"
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [_binary("prometheus-node-exporter"), f"--web.listen-address={self.address}"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_http(f"http://{self.address}/metrics", self.process, log, 20.0)
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None


@dataclass
class Prometheus:
    workdir: Path
    config: str
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.port = self.port or free_port(self.host)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 30.0) -> Prometheus:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(self.config)
        cmd = [
            _binary("prometheus"),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _wait_http(f"{self.url}/-/ready", self.process, self.log_path, timeout)
        return self

    def stop(self) -> None:
        _stop(self.process)
        self.process = None

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns ``data``; raises with Prometheus' own error text."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            body = json.loads(http_get(url, timeout=30.0))
        except urllib.error.HTTPError as err:
            body = json.loads(err.read().decode() or "{}")
        if body.get("status") != "success":
            raise MonitoringProcessError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)[
            "result"
        ]

    def targets(self) -> list[dict[str, Any]]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_targets_up(self, jobs: set[str], timeout: float = 30.0) -> None:
        """Wait until every active target of ``jobs`` has been scraped successfully."""
        deadline = time.monotonic() + timeout
        pending: list[str] = []
        while time.monotonic() < deadline:
            pending = [
                f"{t['labels'].get('job')}/{t['labels'].get('instance')} ({t['health']}: {t.get('lastError')})"
                for t in self.targets()
                if t["labels"].get("job") in jobs and t["health"] != "up"
            ]
            seen = {t["labels"].get("job") for t in self.targets()}
            if not pending and jobs <= seen:
                return
            time.sleep(0.5)
        raise MonitoringProcessError(f"targets not up after {timeout:.0f}s: {pending}")
