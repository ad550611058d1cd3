"""Issue #3 acceptance: a lossy 100,000-reading burst lands exactly once; broker outage and SIGTERM lose
no acked reading. Real broker, real gateway processes, real UDP."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from broker.kafka import KafkaBroker
from harness.loadgen import Fleet, FleetResult, fleet_keys
from tests.gateway.kafka_audit import audit, read_topic

pytestmark = [pytest.mark.broker, pytest.mark.slow]


class FleetThread(threading.Thread):
    """Runs a loadgen Fleet on its own event loop while the test thread breaks things."""

    def __init__(self, fleet: Fleet, timeout_s: float) -> None:
        super().__init__(daemon=True)
        self.fleet, self.timeout_s = fleet, timeout_s
        self.result: FleetResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = asyncio.run(self.fleet.run(self.timeout_s))
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def acked_so_far(self) -> int:
        return sum(d.acked - d.first_seq + 1 for d in self.fleet.devices.values())

    def finish(self, timeout: float) -> FleetResult:
        self.join(timeout)
        assert not self.is_alive(), "fleet did not finish"
        assert self.error is None, repr(self.error)
        assert self.result is not None
        return self.result


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_lossy_burst_lands_exactly_once(kafka_broker, fresh_topic, gateway_factory):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"workers": 2})
    run = uuid.uuid4().hex[:8]
    keys = fleet_keys(gw.master_key, 1000, run)
    fleet = Fleet(
        "127.0.0.1", gw.udp_port, keys, readings_per_device=100, batch=20, drop_rate=0.05, run_id=run, seed=7
    )
    result = asyncio.run(fleet.run(timeout_s=240))
    assert result.datagrams_dropped > 100 and result.answers_dropped > 50  # the loss really happened
    assert result.fully_acked == 1000, f"{1000 - result.fully_acked} devices never saw their final ACK"
    assert all(acked == 100 for acked in result.final_acks.values())
    records = asyncio.run(read_topic(kafka_broker.bootstrap, fresh_topic, timeout_s=120))
    report = audit(records, {d: range(1, 101) for d in keys})
    assert report.delivered == 100_000
    assert not report.missing and not report.unexpected
    assert report.duplicates == 0, "a retransmission was produced twice"
    assert all(r["payload"]["run"] == run for r in records)
    # keys keep a device on one partition
    partitions: dict[str, set[int]] = {}
    for r in records:
        partitions.setdefault(r["_key"], set()).add(r["_partition"])
    assert all(len(p) == 1 for p in partitions.values())
    assert gw.wait_metric("iot_messages_produced_total", 100_000) == 100_000
    assert gw.wait_metric("iot_duplicate_readings_total", 1) > 0  # retransmissions after lost ACKs were seen


def test_broker_outage_loses_no_acked_reading(tmp_path, gateway_factory):
    broker = KafkaBroker(workdir=tmp_path / "kafka", partitions=6)
    broker.start()
    try:
        broker.create_topic("outage", partitions=6)
        gw = gateway_factory.start(
            broker.bootstrap, "outage", udp={"workers": 2}, kafka={"request_timeout_ms": 15000}
        )
        run = uuid.uuid4().hex[:8]
        keys = fleet_keys(gw.master_key, 200, run)
        fleet = Fleet("127.0.0.1", gw.udp_port, keys, readings_per_device=300, batch=10, run_id=run, seed=3)
        thread = FleetThread(fleet, timeout_s=180)
        thread.start()
        wait_until(lambda: thread.acked_so_far() > 5_000, 60, "the first acks")
        broker.kill()
        acked_at_kill = thread.acked_so_far()
        assert acked_at_kill < 60_000, "the outage must hit mid-stream"
        time.sleep(10)
        stalled = thread.acked_so_far()
        broker.start()
        result = thread.finish(timeout=200)
        assert stalled - acked_at_kill < 2_000  # nothing much can be acked while Kafka is down
        assert result.fully_acked == 200, "devices must get everything acked once the broker is back"
        records = asyncio.run(read_topic(broker.bootstrap, "outage", timeout_s=120))
        report = audit(records, {d: range(1, acked + 1) for d, acked in result.final_acks.items()})
        assert not report.missing, f"acked readings lost: {report.missing[:5]}"
        assert not report.unexpected
    finally:
        broker.stop(delete=True)


def test_sigterm_mid_stream_loses_no_acked_reading(kafka_broker, fresh_topic, gateway_factory):
    gw = gateway_factory.start(kafka_broker.bootstrap, fresh_topic, udp={"workers": 2})
    run = uuid.uuid4().hex[:8]
    keys = fleet_keys(gw.master_key, 300, run)
    fleet = Fleet("127.0.0.1", gw.udp_port, keys, readings_per_device=200, batch=10, run_id=run, seed=5)
    thread = FleetThread(fleet, timeout_s=180)
    thread.start()
    wait_until(lambda: thread.acked_so_far() > 5_000, 60, "the first acks")
    assert gw.stop() == 0  # SIGTERM: drain, ack what Kafka committed, exit 0
    assert "event=stopped" in gw.log_tail() and "drain_timeout" not in gw.log_tail()
    acked_at_stop = thread.acked_so_far()
    assert acked_at_stop < 60_000  # it really stopped mid-stream
    records = asyncio.run(read_topic(kafka_broker.bootstrap, fresh_topic))
    acked = {d.device_id: d.acked for d in fleet.devices.values()}
    report = audit(records, {d: range(1, a + 1) for d, a in acked.items()})
    assert not report.missing, f"acked readings lost: {report.missing[:5]}"
    # unacked data stayed on the devices: a new gateway on the same port takes the rest
    gw2 = gateway_factory.start(
        kafka_broker.bootstrap, fresh_topic, master_key=gw.master_key, udp={"workers": 2, "port": gw.udp_port}
    )
    result = thread.finish(timeout=200)
    assert result.fully_acked == 300
    records = asyncio.run(read_topic(kafka_broker.bootstrap, fresh_topic))
    report = audit(records, {d: range(1, 201) for d in keys})
    assert not report.missing and not report.unexpected
    # at-least-once across a restart: only readings whose ACK was lost in the switch may repeat
    assert report.duplicates < 300 * 10
    assert gw2.wait_metric("iot_messages_produced_total", 1) > 0
