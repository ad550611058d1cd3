"""site.yml end to end: a signed IBP/1 datagram sent FROM each agent host reaches the gateway,
is acknowledged, and lands in the broker's Kafka topic."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time

import testinfra
import testinfra.utils.ansible_runner
import yaml
from aiokafka import AIOKafkaConsumer

from ibp.protocol import Ack, derive_device_key, encode_data, parse_response

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("agents")

SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for _ in range(5):
    s.sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], int(sys.argv[3])))
    try:
        print(s.recvfrom(2048)[0].hex())
        break
    except TimeoutError:
        continue
"""


def gateway_host():
    return testinfra.get_host("ansible://gateway-1", ansible_inventory=INVENTORY)


async def find_record(bootstrap: str, topic: str, run_id: str, timeout_s: float = 60.0) -> dict | None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    value = json.loads(record.value)
                    if value.get("payload", {}).get("run") == run_id:
                        return {"key": record.key.decode(), **value}
        return None
    finally:
        await consumer.stop()


def test_all_four_groups_were_deployed(host):
    gw = gateway_host()
    assert gw.service("iot-gateway").is_running
    assert host.service("iot-simulator-agent").is_running
    assert json.loads(host.file("/etc/ansible/facts.d/kernel_tuning.fact").content_string)["profiles"] == [
        "agent"
    ]


def test_datagram_from_the_agent_host_reaches_kafka(host):
    gw = gateway_host()
    config = yaml.safe_load(gw.file("/etc/iot-gateway/gateway.yml").content_string)
    registry = yaml.safe_load(gw.file("/etc/iot-gateway/devices.yml").content_string)
    master_key = bytes.fromhex(registry["fleets"][0]["master_key"])
    run_id = f"site-{host.backend.get_hostname()}-{secrets.token_hex(4)}"
    device_id = f"{registry['fleets'][0]['prefix']}site-{secrets.token_hex(4)}"
    key = derive_device_key(master_key, device_id)
    payload = json.dumps({"run": run_id, "temperature_c": 19.0}).encode()
    datagram = encode_data(device_id, key, 7, [(int(time.time() * 1000), payload)])

    out = host.check_output(f"python3 -c '{SEND}' {datagram.hex()} gateway-1 {config['udp']['port']}")

    assert out, "no answer from gateway-1 to the agent host"
    assert parse_response(bytes.fromhex(out.strip()), key) == Ack(device_id=device_id, ack_seq=7)
    record = asyncio.run(find_record(config["kafka"]["bootstrap_servers"], config["kafka"]["topic"], run_id))
    assert record is not None, f"{run_id} not in Kafka at {config['kafka']['bootstrap_servers']}"
    assert record["key"] == device_id and record["seq"] == 7
