"""The automq flavor with a STAND-IN release tarball and moto S3 (see ../molecule.yml for what this
proves and what only the real AutoMQ tarball can prove)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

SCENARIO = Path(__file__).resolve().parents[1]
CLUSTER_ID = "amqStandinMoleculeTst1"
RELEASE = "automq-1.7.0-standin_kafka-3.9.1"


@pytest.fixture(scope="module")
def endpoint() -> str:
    state = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "moto" / "moto.json"
    return json.loads(state.read_text())["endpoint"]


@pytest.fixture(scope="module")
def properties(host) -> dict[str, str]:
    text = host.file("/etc/automq/server.properties").content_string
    pairs = [line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")]
    return dict(pairs)


def test_rendered_automq_storage_properties(properties, endpoint):
    uri = f"?region=us-east-1&endpoint={endpoint}&pathStyle=true&authType=static"
    assert properties["elasticstream.enable"] == "true"
    assert properties["s3.data.buckets"] == f"0@s3://automq-data{uri}"
    assert properties["s3.ops.buckets"] == f"1@s3://automq-ops{uri}"
    assert properties["s3.wal.path"] == f"0@s3://automq-data{uri}"
    assert properties["s3.telemetry.metrics.exporter.uri"] == "prometheus://?host=0.0.0.0&port=9090"
    assert properties["cluster.id"] == CLUSTER_ID


def test_rendered_kraft_properties(properties, node):
    assert properties["process.roles"] == "broker,controller"
    assert properties["node.id"] == "0"
    assert properties["controller.quorum.voters"] == f"0@{node.address}:9093"
    # AutoMQ keeps one replica: S3 holds the copies.
    assert properties["default.replication.factor"] == "1"
    assert properties["offsets.topic.replication.factor"] == "1"


def test_credentials_only_in_root_environment_file(host):
    env = host.file("/etc/automq/automq.env")
    assert env.user == "root" and env.mode == 0o600
    assert "KAFKA_S3_ACCESS_KEY=" in env.content_string
    assert "KAFKA_S3_SECRET_KEY=" in env.content_string
    assert "KAFKA_S3" not in host.file("/etc/automq/server.properties").content_string


def test_release_unpacked_and_linked(host):
    assert host.file("/opt/automq/current").linked_to == f"/opt/automq/{RELEASE}"
    assert host.file(f"/opt/automq/{RELEASE}/bin/kafka-server-start.sh").mode & 0o111
    # Honesty marker: what runs here is the stand-in, not AutoMQ.
    assert "NOT an AutoMQ release" in host.file(f"/opt/automq/{RELEASE}/STANDIN.txt").content_string


def test_started_through_the_release_start_script(host):
    assert host.service("automq").is_running
    unit = host.check_output("systemctl show automq -p ExecStart --value")
    assert "/opt/automq/current/bin/kafka-server-start.sh /etc/automq/server.properties" in unit
    pid = host.check_output("systemctl show -p MainPID --value automq")
    cmdline = host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    # KAFKA_HEAP_OPTS and KAFKA_OPTS from the role's environment file reached the JVM.
    assert "-Xmx384m" in cmdline and "-XX:MaxDirectMemorySize=256m" in cmdline
    assert "-Dio.netty.allocator.maxOrder=11" in cmdline


def test_formatted_by_cluster_id(host):
    meta = host.file("/var/lib/automq/data/meta.properties").content_string
    assert f"cluster.id={CLUSTER_ID}" in meta


def test_topic_with_one_replica_and_traffic(node, unique_topic):
    described = node.describe_topic("iot_telemetry")
    assert "PartitionCount: 4" in described and "ReplicationFactor: 1" in described
    node.create_topic(unique_topic)
    lines = ["a", "b", "c"]
    assert node.produce(node.client, unique_topic, lines).rc == 0
    assert node.consume(node.client, unique_topic, 3) == lines


def test_preflight_cleaned_up_after_itself(endpoint):
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    for bucket in ("automq-data", "automq-ops"):
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="automq-preflight/")
        assert listed.get("KeyCount", 0) == 0, bucket


def test_preflight_names_the_failing_bucket(host, endpoint):
    host.run_expect([0], "mkdir -p /tmp/pf")
    script = (SCENARIO.parents[1] / "files" / "s3_preflight.py").read_text()
    host.run(f"cat > /tmp/pf/s3_preflight.py <<'EOF'\n{script}EOF")
    result = host.run(
        "AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x python3 /tmp/pf/s3_preflight.py "
        f"--endpoint {endpoint} --path-style --bucket automq-data --bucket no-such-bucket"
    )
    assert result.rc == 1
    assert '"bucket": "automq-data", "ok": true' in result.stdout
    assert "bucket 'no-such-bucket': put failed: NoSuchBucket" in result.stdout


def test_wrong_checksum_refused_without_touching_the_install(host, run_playbook):
    before = host.file("/opt/automq/current").linked_to
    wrong = "sha256:" + "0" * 64
    result = run_playbook(SCENARIO / "converge.yml", "-e", f"automq_archive_checksum={wrong}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"but the configured checksum is {wrong}" in output
    assert host.file("/opt/automq/current").linked_to == before
    assert host.service("automq").is_running


def test_unusable_bucket_stops_the_run_before_any_change(host, run_playbook):
    before = host.file("/etc/automq/server.properties").content_string
    result = run_playbook(SCENARIO / "converge.yml", "-e", "automq_s3_ops_bucket=missing-ops-bucket")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "S3 preflight failed on amq-s1: bucket 'missing-ops-bucket': put failed: NoSuchBucket" in output
    assert host.file("/etc/automq/server.properties").content_string == before
    assert host.service("automq").is_running
