"""Fixtures shared by the automq role's testinfra suites.

They drive the broker with Kafka's own command-line tools from the jars the role installed (through
the role's wrapper /usr/local/bin/automq-kafka-tool) on the test hosts themselves, and reach other
hosts of the scenario through Molecule's inventory.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import testinfra

TOOL = "/usr/local/bin/automq-kafka-tool"
ROLE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = ROLE_DIR.parents[1]


@dataclass
class KafkaOnHost:
    """Kafka tools run on one test host."""

    host: object
    name: str

    @property
    def address(self) -> str:
        return self.host.ansible.get_variables()["ansible_host"]

    @property
    def internal(self) -> str:
        return f"{self.address}:9094"

    @property
    def client(self) -> str:
        return f"{self.address}:9092"

    def tool(self, main: str, *args: str, stdin: list[str] | None = None, timeout: int = 120):
        cmd = f"timeout {timeout} {TOOL} {main} " + " ".join(shlex.quote(a) for a in args)
        if stdin is not None:
            cmd = "printf '%s\\n' " + " ".join(shlex.quote(line) for line in stdin) + " | " + cmd
        return self.host.run(cmd)

    def create_topic(self, topic: str, partitions: int = 1, replication: int = 1) -> None:
        result = self.tool(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            self.internal,
            "--create",
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--replication-factor",
            str(replication),
        )
        assert result.rc == 0, f"creating {topic} failed: {result.stdout}{result.stderr}"

    def describe_topic(self, topic: str) -> str:
        result = self.tool(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            self.internal,
            "--describe",
            "--topic",
            topic,
        )
        assert result.rc == 0, f"describing {topic} failed: {result.stdout}{result.stderr}"
        return result.stdout

    def produce(self, bootstrap: str, topic: str, lines: list[str], config: str | None = None):
        args = ["--bootstrap-server", bootstrap, "--topic", topic, "--producer-property", "acks=all"]
        if config:
            args += ["--producer.config", config]
        return self.tool("kafka.tools.ConsoleProducer", *args, stdin=lines)

    def record_count(self, topic: str) -> int:
        """Records in the topic: the sum of its partitions' end offsets (nothing is deleted in a test)."""
        result = self.tool(
            "org.apache.kafka.tools.GetOffsetShell",
            "--bootstrap-server",
            self.internal,
            "--topic",
            topic,
            "--time",
            "-1",
        )
        assert result.rc == 0, f"reading the end offsets of {topic} failed: {result.stdout}{result.stderr}"
        return sum(int(line.rsplit(":", 1)[1]) for line in result.stdout.splitlines() if line.count(":") >= 2)

    def consume(self, bootstrap: str, topic: str, count: int, config: str | None = None) -> list[str]:
        args = ["--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning"]
        args += ["--max-messages", str(count), "--timeout-ms", "60000"]
        if config:
            args += ["--consumer.config", config]
        result = self.tool("org.apache.kafka.tools.consumer.ConsoleConsumer", *args)
        return [line for line in result.stdout.splitlines() if line]

    def wait_serving(self, timeout: float = 180.0) -> None:
        """Wait until the node answers on its internal listener and the quorum has a leader."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            result = self.tool(
                "org.apache.kafka.tools.MetadataQuorumCommand",
                "--bootstrap-server",
                self.internal,
                "describe",
                "--status",
                timeout=30,
            )
            if result.rc == 0 and "LeaderId:" in result.stdout:
                return
            last = result.stdout + result.stderr
            time.sleep(3)
        raise AssertionError(f"{self.name} did not serve within {timeout}s: {last[-2000:]}")

    def under_replicated(self) -> str:
        result = self.tool(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            self.internal,
            "--describe",
            "--under-replicated-partitions",
        )
        assert result.rc == 0, result.stderr
        return result.stdout.strip()


@pytest.fixture(scope="module")
def inventory() -> str:
    path = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not path:
        pytest.fail("MOLECULE_INVENTORY_FILE is not set: run these tests through `molecule verify`")
    return path


@pytest.fixture(scope="module")
def brokers(inventory: str) -> list[KafkaOnHost]:
    """Every host of the scenario's `brokers` group, in inventory order."""
    hosts = testinfra.get_hosts(["ansible://brokers"], ansible_inventory=inventory)
    return [KafkaOnHost(h, h.backend.host) for h in hosts]


@pytest.fixture(scope="module")
def node(brokers: list[KafkaOnHost]) -> KafkaOnHost:
    """The broker of a single-node scenario."""
    assert len(brokers) == 1
    return brokers[0]


@pytest.fixture
def unique_topic() -> str:
    return f"smoke-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def run_playbook():
    """Run a playbook against the scenario's inventory from the control machine (as Molecule does)."""
    return _run_playbook


def _run_playbook(playbook: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    ephemeral = env.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
    if ephemeral and (Path(ephemeral) / "ansible.cfg").exists():
        env["ANSIBLE_CONFIG"] = str(Path(ephemeral) / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(REPO_ROOT / "roles")
    env["ANSIBLE_FORCE_COLOR"] = "0"
    cmd = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i",
        env["MOLECULE_INVENTORY_FILE"],
        str(playbook),
        *extra,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
