"""Resolve the Prometheus JMX exporter java agent (Maven Central) for the local test broker.

The agent jar is cached under ``.cache/jmx-exporter/<hash of broker/jmx/pom.xml>/``. ``javaagent_arg``
builds the JVM flag that serves the broker's MBeans, filtered by ``broker/jmx/kafka-jmx.yml``, as
Prometheus metrics on ``http://HOST:PORT/metrics``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from broker.kafka import CACHE, BrokerError

JMX_DIR = Path(__file__).resolve().parent / "jmx"
POM = JMX_DIR / "pom.xml"
CONFIG = JMX_DIR / "kafka-jmx.yml"


def _digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def agent_jar() -> Path:
    """The agent jar, fetched with Maven on first use (one jar, no transitive dependencies)."""
    folder = CACHE / "jmx-exporter" / _digest()
    jars = sorted(folder.glob("jmx_prometheus_javaagent-*.jar"))
    if (folder / ".complete").exists() and jars:
        return jars[0]
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (mvn) is not installed: run `make setup` (as root it installs it)")
    shutil.rmtree(folder, ignore_errors=True)
    cmd = [
        "mvn",
        "-B",
        "-q",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={folder}",
        "-DexcludeTransitive=true",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    jars = sorted(folder.glob("jmx_prometheus_javaagent-*.jar"))
    if result.returncode != 0 or not jars:
        raise BrokerError(
            f"fetching the JMX exporter agent failed ({' '.join(cmd)}):\n{result.stdout[-4000:]}"
        )
    (folder / ".complete").write_text(jars[0].name)
    return jars[0]


def javaagent_arg(host: str, port: int, config: Path = CONFIG) -> str:
    """``-javaagent:JAR=HOST:PORT:CONFIG`` for a JVM that should serve /metrics on HOST:PORT."""
    if not config.exists():
        raise BrokerError(f"JMX exporter config {config} does not exist")
    return f"-javaagent:{agent_jar()}={host}:{port}:{config}"
