"""Start ``python -m gateway`` as a subprocess on free loopback ports (tests, bench, demo).

    gw = start_gateway("127.0.0.1:9092", "iot_telemetry", workdir=Path("/tmp/gw"), udp={"workers": 2})
    ... send to ("127.0.0.1", gw.udp_port) with keys derived from gw.master_key ...
    gw.stop()  # SIGTERM, returns the exit code

It writes a key registry with a fresh random fleet master key for the prefix ``sim-`` (plus explicit
``device_keys``), a YAML config, starts the gateway with its stdout in ``workdir/gateway.log``, reads the real ports
from the ``event=listening`` line and waits until ``/readyz`` answers 200. The high-water marks persist in
``workdir/state`` (as where the role deploys it, so tests and bench measure that path); pass
``state={"dir": None}`` for memory only, or another gateway's state dir to restart "the same" gateway.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config import PILOT_ENV
from ibp.protocol import derive_device_key

ROOT = Path(__file__).resolve().parent.parent
FLEET_PREFIX = "sim-"


class LaunchError(RuntimeError):
    """The gateway did not come up; the message carries its log tail."""


@dataclass
class Histogram:
    """One histogram of a scrape, summed over the workers: ``buckets`` are cumulative counts by ``le``."""

    sum: float = 0.0
    count: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


@dataclass
class RunningGateway:
    process: subprocess.Popen
    workdir: Path
    master_key: bytes
    registry_path: Path
    config_path: Path
    udp_port: int = 0
    http_port: int = 0
    host: str = "127.0.0.1"
    devices: dict[str, bytes] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def key_for(self, device_id: str) -> bytes:
        if device_id in self.devices:
            return self.devices[device_id]
        return derive_device_key(self.master_key, device_id)

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no gateway log)"

    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        url = f"http://{self.host}:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics_text(self) -> str:
        status, body = self.http_get("/metrics")
        if status != 200:
            raise LaunchError(f"/metrics answered {status}")
        return body

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` whose labels include ``labels`` (0.0 when absent)."""
        return self.metrics(name, **labels)[name]

    def _samples(self) -> Iterator[Any]:
        """Every sample of one ``/metrics`` scrape."""
        from prometheus_client.parser import text_string_to_metric_families

        for family in text_string_to_metric_families(self.metrics_text()):
            yield from family.samples

    def metrics(self, *names: str, **labels: str) -> dict[str, float]:
        """:meth:`metric` of each name, from one scrape (figures of the same moment)."""
        totals = dict.fromkeys(names, 0.0)
        for sample in self._samples():
            if sample.name in totals and all(sample.labels.get(k) == v for k, v in labels.items()):
                totals[sample.name] += sample.value
        return totals

    def histograms(self, *names: str) -> dict[str, Histogram]:
        """Each histogram's sum, count and cumulative bucket counts (by upper bound ``le``), summed over
        every worker, from one scrape."""
        out = {name: Histogram() for name in names}
        for sample in self._samples():
            name, _, part = sample.name.rpartition("_")
            h = out.get(name)
            if h is None:
                continue
            if part == "bucket":
                le = float(sample.labels["le"])
                h.buckets[le] = h.buckets.get(le, 0.0) + sample.value
            elif part == "sum":
                h.sum += sample.value
            elif part == "count":
                h.count += sample.value
        return out

    def wait_metric(self, name: str, at_least: float, timeout: float = 10.0, **labels: str) -> float:
        """Poll ``metric`` until it reaches ``at_least`` (workers publish every 0.2 s); returns the last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        """Send ``sig`` and wait; SIGKILL after ``timeout``. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def reload(self) -> None:
        """SIGHUP the supervisor: it validates the registry file and has every worker reload it."""
        self.process.send_signal(signal.SIGHUP)

    @property
    def state_dir(self) -> Path | None:
        cfg = yaml.safe_load(self.config_path.read_text())
        value = cfg.get("state", {}).get("dir")
        return Path(value) if value else None

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


def write_registry(path: Path, master_key: bytes, devices: dict[str, bytes] | None = None) -> None:
    data = {
        "version": 1,
        "devices": {k: v.hex() for k, v in (devices or {}).items()},
        "fleets": [{"prefix": FLEET_PREFIX, "master_key": master_key.hex()}],
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o600)


def build_config(bootstrap: str, topic: str, registry: Path, overrides: dict) -> dict:
    """A config mapping on loopback with free ports; ``overrides`` are {section: {key: value}}."""
    cfg: dict = {
        "udp": {"host": "127.0.0.1", "port": 0, "workers": 1},
        "http": {"host": "127.0.0.1", "port": 0},
        "kafka": {"bootstrap_servers": bootstrap, "topic": topic},
        "devices": {"registry": str(registry)},
        "state": {"dir": str(registry.parent / "state")},
    }
    for section, values in overrides.items():
        if not isinstance(values, dict):
            raise TypeError(f"override {section!r} must be a mapping of keys, e.g. udp={{'workers': 2}}")
        cfg.setdefault(section, {}).update(values)
    return cfg


def start_gateway(
    bootstrap: str,
    topic: str,
    workdir: Path,
    *,
    device_keys: dict[str, bytes] | None = None,
    master_key: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    python: str = sys.executable,
    **overrides: dict,
) -> RunningGateway:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    master_key = master_key or secrets.token_bytes(32)
    registry = workdir / "devices.yml"
    write_registry(registry, master_key, device_keys)
    config_path = workdir / "gateway.yml"
    config_path.write_text(
        yaml.safe_dump(build_config(bootstrap, topic, registry, overrides), sort_keys=False)
    )
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_") and k not in PILOT_ENV}
    child_env["PYTHONPATH"] = str(ROOT) + os.pathsep + child_env.get("PYTHONPATH", "")
    child_env.update(env or {})
    log = open(workdir / "gateway.log", "ab")
    log_start = log.tell()
    process = subprocess.Popen(
        [python, "-m", "gateway", "--config", str(config_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env,
        cwd=str(ROOT),
        start_new_session=True,
    )
    log.close()
    gw = RunningGateway(process, workdir, master_key, registry, config_path, devices=dict(device_keys or {}))
    try:
        _wait_listening(gw, timeout, log_start)
        wait_ready(gw, timeout)
    except BaseException:
        gw.kill()
        raise
    return gw


def _wait_listening(gw: RunningGateway, timeout: float, log_start: int) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(gw.log_path, "rb") as f:
            f.seek(log_start)
            text = f.read(1 << 20).decode(errors="replace")
        for line in text.splitlines():
            if "event=listening" in line:
                fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
                gw.udp_port, gw.http_port = int(fields["udp_port"]), int(fields["http_port"])
                return
        if gw.process.poll() is not None:
            raise LaunchError(f"gateway exited with {gw.process.returncode}:\n{gw.log_tail()}")
        time.sleep(0.05)
    raise LaunchError(f"gateway did not log event=listening within {timeout:.0f}s:\n{gw.log_tail()}")


def wait_ready(gw: RunningGateway, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gw.process.poll() is not None:
            raise LaunchError(f"gateway exited with {gw.process.returncode}:\n{gw.log_tail()}")
        try:
            if gw.http_get("/readyz", timeout=2.0)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise LaunchError(f"gateway not ready (/readyz) within {timeout:.0f}s:\n{gw.log_tail()}")
