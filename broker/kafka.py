"""Assemble, start, wait for, stop and clean up a single-node KRaft Kafka broker on loopback."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = Path(__file__).resolve().parent / "pom.xml"
LOG4J = Path(__file__).resolve().parent / "log4j.properties"
TOOLS_LOG4J = Path(__file__).resolve().parent / "tools-log4j.properties"
CACHE = Path(os.environ.get("IOT_CACHE_DIR", ROOT / ".cache"))


class BrokerError(RuntimeError):
    """The broker could not be assembled, formatted or started; the message says what to look at."""


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def libs_dir() -> Path:
    return CACHE / "kafka" / _pom_digest() / "libs"


def assemble(quiet: bool = True) -> Path:
    """Resolve the broker's jars from Maven Central into the cache (once per pom.xml content)."""
    libs = libs_dir()
    stamp = libs / ".complete"
    if stamp.exists():
        return libs
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not installed: run `make setup` (as root it installs it)")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [
        "mvn",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={tmp}",
        "-DincludeScope=runtime",
    ]
    if quiet:
        cmd.insert(1, "-q")
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BrokerError(f"assembling Kafka from Maven failed ({' '.join(cmd)}):\n{result.stdout[-4000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    stamp.write_text(_pom_digest())
    return libs


def kafka_classpath() -> str:
    return str(assemble() / "*")


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("no Java runtime: install Java 17 (run `make setup` as root)")
    return java


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class KafkaBroker:
    """One KRaft node acting as broker and controller, listening on loopback.

    ``start()`` formats the storage on first use, launches the JVM with its output in ``log_path``
    and waits until the broker answers a metadata request. ``stop()`` sends SIGTERM (SIGKILL after a
    timeout). ``stop(delete=True)`` also removes the data directory. The same object can be stopped and
    started again on the same ports and data (a broker outage in a test). With ``jmx_exporter_port``
    (0 picks a free port) the Prometheus JMX exporter agent serves the broker's key MBeans on
    ``http://HOST:jmx_exporter_port/metrics``; by default no agent is loaded.
    """

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    controller_port: int = 0
    heap: str = "768m"
    partitions: int = 6
    extra_properties: dict[str, str] = field(default_factory=dict)
    jmx_exporter_port: int | None = None  # serve JMX as Prometheus metrics there (broker/jmx_exporter.py)
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.port = self.port or free_port(self.host)
        self.controller_port = self.controller_port or free_port(self.host)
        if self.jmx_exporter_port == 0:
            self.jmx_exporter_port = free_port(self.host)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def config_path(self) -> Path:
        return self.workdir / "server.properties"

    def properties(self) -> dict[str, str]:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "6",
        }
        props.update(self.extra_properties)
        return props

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in self.properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _java(self, *args: str, heap: str = "256m", log4j: Path = TOOLS_LOG4J) -> list[str]:
        return [
            java_bin(),
            f"-Xmx{heap}",
            f"-Dlog4j.configuration=file:{log4j}",
            "-cp",
            kafka_classpath(),
            *args,
        ]

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = _kafka_uuid()
        result = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_path)),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage in {self.data_dir} failed:\n{result.stdout}{result.stderr}"
            )

    def start(self, timeout: float = 90.0) -> KafkaBroker:
        if self.process is not None and self.process.poll() is None:
            return self
        self._write_config()
        self._format()
        agent: list[str] = []
        if self.jmx_exporter_port is not None:
            from broker.jmx_exporter import javaagent_arg

            agent = [javaagent_arg(self.host, self.jmx_exporter_port)]
        log = open(self.log_path, "ab")
        cmd = self._java(
            *agent,
            "-Xms" + self.heap,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            "kafka.Kafka",
            str(self.config_path),
            heap=self.heap,
            log4j=LOG4J,
        )
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        (self.workdir / "broker.pid").write_text(str(self.process.pid))
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(f"broker exited with {self.process.returncode}; log:\n{self.log_tail()}")
            if _answers_metadata(self.host, self.port):
                return
            time.sleep(0.3)
        raise BrokerError(
            f"broker did not answer on {self.bootstrap} within {timeout:.0f}s; log:\n{self.log_tail()}"
        )

    def stop(self, delete: bool = False, timeout: float = 30.0) -> None:
        pid = self.process.pid if self.process is not None else read_pid(self.workdir / "broker.pid")
        if pid is not None:
            _terminate(pid, timeout)
        if self.process is not None:
            self.process.wait()
            self.process = None
        (self.workdir / "broker.pid").unlink(missing_ok=True)
        if delete:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the broker: a crash, not a clean shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.exists():
            return "(no broker log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def run_tool(self, main_class: str, *args: str) -> subprocess.CompletedProcess:
        """Run a Kafka command-line tool from the same jars (e.g. org.apache.kafka.tools.TopicCommand)."""
        return subprocess.run(self._java(main_class, *args), capture_output=True, text=True)

    def create_topic(self, name: str, partitions: int | None = None) -> None:
        result = self.run_tool(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            self.bootstrap,
            "--create",
            "--if-not-exists",
            "--topic",
            name,
            "--partitions",
            str(partitions or self.partitions),
            "--replication-factor",
            "1",
        )
        if result.returncode != 0:
            raise BrokerError(f"creating topic {name!r} failed:\n{result.stdout}{result.stderr}")


def _kafka_uuid() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints).

    Like Kafka's Uuid.randomUuid, never one starting with '-': StorageTool would read it as an option
    (1 start in 64 failed with "argument --cluster-id/-t: expected one argument").
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _answers_metadata(host: str, port: int) -> bool:
    """True when the broker answers an ApiVersions request (v0) on its client port."""
    # ApiVersions v0 request: size, api_key=18, api_version=0, correlation_id=1, client_id="probe"
    client_id = b"probe"
    body = (
        (18).to_bytes(2, "big")
        + (0).to_bytes(2, "big")
        + (1).to_bytes(4, "big")
        + len(client_id).to_bytes(2, "big")
        + client_id
    )
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(len(body).to_bytes(4, "big") + body)
            header = s.recv(4)
            if len(header) < 4:
                return False
            size = int.from_bytes(header, "big")
            data = b""
            while len(data) < size:
                chunk = s.recv(size - len(data))
                if not chunk:
                    return False
                data += chunk
            # correlation id (4) then error code (2): 0 means the broker is serving requests
            return data[:4] == (1).to_bytes(4, "big") and data[4:6] == b"\x00\x00"
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            # reap if it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
