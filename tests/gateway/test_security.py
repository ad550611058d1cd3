"""SASL_SSL with SCRAM-SHA-256 passed through to aiokafka, against a real broker with TLS and SCRAM users.

The broker keeps a PLAINTEXT listener (readiness probe, topic creation, the test's consumer) and adds a
SASL_SSL listener for the gateway. The CA, the server certificate (SAN 127.0.0.1) and the SCRAM password
are generated per test run; nothing secret is in the repository.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from broker.kafka import BrokerError, KafkaBroker, _kafka_uuid, free_port
from harness.gateway import LaunchError
from ibp import protocol
from tests.gateway.kafka_audit import read_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def make_tls(directory: Path, password: str) -> tuple[Path, Path]:
    """A CA (PEM, for the client) and a PKCS12 keystore with a server cert for 127.0.0.1 (for Kafka)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iot-pilot test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = directory / "ca.pem"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    keystore = directory / "broker.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"broker", key, cert, [ca], serialization.BestAvailableEncryption(password.encode())
        )
    )
    return ca_pem, keystore


class ScramBroker(KafkaBroker):
    """KafkaBroker plus a SASL_SSL listener and SCRAM users created when the storage is formatted."""

    scram_users: dict[str, str]

    def _format(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        args = ["kafka.tools.StorageTool", "format", "-t", _kafka_uuid(), "-c", str(self.config_path)]
        for user, password in self.scram_users.items():
            args += ["--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]"]
        result = subprocess.run(self._java(*args), capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(f"formatting with SCRAM users failed:\n{result.stdout}{result.stderr}")


@pytest.fixture(scope="module")
def scram_broker(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("scram-kafka")
    store_password = secrets.token_hex(12)
    ca_pem, keystore = make_tls(workdir, store_password)
    broker = ScramBroker(workdir=workdir / "kafka")
    broker.scram_users = {"gateway": secrets.token_urlsafe(16)}
    sasl_port = free_port()
    h = broker.host
    broker.extra_properties = {
        "listeners": f"PLAINTEXT://{h}:{broker.port},CONTROLLER://{h}:{broker.controller_port},SASL_SSL://{h}:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://{h}:{broker.port},SASL_SSL://{h}:{sasl_port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": store_password,
        "ssl.key.password": store_password,
    }
    broker.start()
    broker.sasl_bootstrap = f"{h}:{sasl_port}"
    broker.ca_pem = ca_pem
    try:
        yield broker
    finally:
        broker.stop(delete=True)


def test_gateway_produces_over_sasl_ssl_scram(scram_broker, gateway_factory):
    scram_broker.create_topic("secure", partitions=3)
    gw = gateway_factory.start(
        scram_broker.sasl_bootstrap,
        "secure",
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "gateway",
            "ssl_cafile": str(scram_broker.ca_pem),
        },
        env={"GATEWAY_KAFKA_SASL_PASSWORD": scram_broker.scram_users["gateway"]},
    )
    assert scram_broker.scram_users["gateway"] not in gw.config_path.read_text()  # secret only in the env
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(15)
        key = gw.key_for("sim-tls")
        s.sendto(
            protocol.encode_data("sim-tls", key, 1, [(0, b'{"secure":true}')]), ("127.0.0.1", gw.udp_port)
        )
        assert protocol.parse_response(s.recv(4096), key) == protocol.Ack("sim-tls", 1)
    records = asyncio.run(read_topic(scram_broker.bootstrap, "secure"))
    assert [(r["device_id"], r["payload"]) for r in records] == [("sim-tls", {"secure": True})]


def test_wrong_scram_password_never_becomes_ready(scram_broker, gateway_factory):
    with pytest.raises(LaunchError) as err:
        gateway_factory.start(
            scram_broker.sasl_bootstrap,
            "secure2",
            kafka={
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-256",
                "sasl_username": "gateway",
                "ssl_cafile": str(scram_broker.ca_pem),
            },
            env={"GATEWAY_KAFKA_SASL_PASSWORD": "wrong-" + secrets.token_hex(4)},
            timeout=12,
        )
    assert "not ready" in str(err.value) and "event=kafka_unavailable" in str(err.value)
