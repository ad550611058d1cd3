"""One kafka-flavor node with TLS + SASL/SCRAM on the client listener and the JMX exporter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SCENARIO = Path(__file__).resolve().parents[1]
CLUSTER_ID = "amqSingleMoleculeTest1"


@pytest.fixture(scope="module")
def scram_password() -> str:
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / "scram-pilot"
    return path.read_text().strip()


def _client_config(node, name: str, user: str, password: str) -> str:
    path = f"/tmp/{name}.properties"
    content = "\n".join(
        [
            "security.protocol=SASL_SSL",
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{password}";',
            "ssl.truststore.type=PEM",
            "ssl.truststore.location=/etc/automq/tls/ca.pem",
            "",
        ]
    )
    node.host.run(f"umask 077 && cat > {path} <<'EOF'\n{content}EOF")
    return path


def test_java_17_runtime(host):
    result = host.run("java -version")
    assert result.rc == 0
    assert 'version "17' in result.stderr


def test_service_runs_as_dedicated_user(host):
    service = host.service("automq")
    assert service.is_enabled
    assert service.is_running
    pid = host.check_output("systemctl show -p MainPID --value automq")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "automq"
    assert host.user("automq").shell == "/usr/sbin/nologin"


def test_unit_limits_and_stop_timeout(host):
    props = host.check_output("systemctl show automq -p LimitNOFILE -p TimeoutStopUSec -p KillSignal")
    assert "LimitNOFILE=131072" in props
    assert "TimeoutStopUSec=2min" in props
    assert "KillSignal=15" in props


def test_heap_from_variables(host):
    pid = host.check_output("systemctl show -p MainPID --value automq")
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert "-Xmx384m" in cmdline


def test_storage_formatted_with_cluster_id(host):
    meta = host.file("/var/lib/automq/data/meta.properties")
    assert meta.exists
    assert meta.user == "automq"
    assert f"cluster.id={CLUSTER_ID}" in meta.content_string
    assert "node.id=0" in meta.content_string


@pytest.mark.parametrize("port", [9092, 9093, 9094, 7071])
def test_listeners_bound(host, port):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_telemetry_topic(node):
    described = node.describe_topic("iot_telemetry")
    assert "PartitionCount: 3" in described
    assert "ReplicationFactor: 1" in described


def test_produce_consume_internal_listener(node, unique_topic):
    node.create_topic(unique_topic)
    lines = [f"reading-{i}" for i in range(5)]
    produced = node.produce(node.internal, unique_topic, lines)
    assert produced.rc == 0, produced.stderr
    assert node.consume(node.internal, unique_topic, len(lines)) == lines


def test_client_listener_needs_scram_over_tls(node, unique_topic, scram_password):
    node.create_topic(unique_topic)
    good = _client_config(node, "good", "pilot", scram_password)
    lines = ["secure-1", "secure-2"]
    produced = node.produce(node.client, unique_topic, lines, config=good)
    assert produced.rc == 0, produced.stderr
    assert node.consume(node.client, unique_topic, len(lines), config=good) == lines

    bad = _client_config(node, "bad", "pilot", scram_password + "x")
    log = node.tool(
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        node.client,
        "--command-config",
        bad,
        "--list",
        timeout=60,
    )
    assert log.rc != 0
    assert "Authentication failed" in log.stdout + log.stderr


def test_jmx_exporter_serves_kafka_metrics(host):
    metrics = host.check_output("curl -sf http://127.0.0.1:7071/metrics")
    # the names the dashboards query (broker/jmx/kafka-jmx.yml, proven in tests/monitoring)
    assert "kafka_server_under_replicated_partitions" in metrics
    assert "kafka_broker_messages_in_total" in metrics
    assert "jvm_memory" in metrics


def test_restart_keeps_topic_and_data(host, node, unique_topic):
    node.create_topic(unique_topic)
    lines = [f"before-restart-{i}" for i in range(3)]
    assert node.produce(node.internal, unique_topic, lines).rc == 0
    before = host.check_output("systemctl show -p InvocationID --value automq")
    host.run_expect([0], "systemctl restart automq")
    assert host.check_output("systemctl show -p InvocationID --value automq") != before
    # The previous JVM stopped on SIGTERM within the stop timeout: a clean, controlled shutdown.
    journal = host.check_output("journalctl -u automq -n 400 --no-pager")
    assert "shut down completed" in journal or "Kafka Server shut down" in journal
    node.wait_serving()
    assert "PartitionCount: 3" in node.describe_topic("iot_telemetry")
    assert node.consume(node.internal, unique_topic, len(lines)) == lines


def test_guard_refuses_foreign_cluster_id(host, run_playbook):
    before = host.file("/var/lib/automq/data/meta.properties").content_string
    result = run_playbook(SCENARIO / "converge.yml", "-e", "automq_cluster_id=AnotherClusterIdXYZ012")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "REFUSING to reformat" in output
    assert "cluster.id=amqSingleMoleculeTest1" in output
    assert host.file("/var/lib/automq/data/meta.properties").content_string == before
    assert host.service("automq").is_running
