"""``make bench``'s peers (bench/peers/) against a real broker, at a rate any machine sustains.

The figures themselves belong to ``make bench``; these tests hold the machinery honest: what rsyslog is
sent lands in Kafka (counted from end offsets, as the bench counts it), and the report's ``peers`` key has
the shape the README's table and later comparisons read. The collector peer is not built here (its first
build takes minutes); its skip must be recorded with the reason.
"""

from __future__ import annotations

import argparse
import json

import pytest

from bench.peers import common, rsyslog, run_peers, sender
from bench.report import PEER_COLUMNS, peer_rows

pytestmark = pytest.mark.broker

ROW_KEYS = {"peer", "kind", "hmac", "ack", "load", "sent_readings", "landed_readings", "lost", "loss_pct"}
ROW_KEYS |= {"landed_readings_per_s", "cpu_s_per_100k", "kernel_udp"}


def test_rsyslog_lands_every_datagram_sent_to_it(kafka_broker, tmp_path):
    assert rsyslog.available() is None, rsyslog.available()
    topic = common.create_topic(kafka_broker.bootstrap, 6, prefix="test-rsyslog")
    peer = rsyslog.RsyslogPeer(kafka_broker.bootstrap, topic, rcvbuf=1 << 20)
    try:
        datagrams = sender.legacy_datagrams(3000)
        sent = sender.send_at_rate("127.0.0.1", peer.port, datagrams, rate=5000, sockets=4)
        landed, _ = common.wait_landed(
            kafka_broker.bootstrap, topic, 6, sent["sent"], quiet_s=5.0, timeout_s=30
        )
    finally:
        assert peer.stop() is not None
    assert sent["sent"] == 3000
    assert landed == 3000, f"rsyslog landed {landed} of 3000"


def test_peers_report_has_every_peer_and_the_expected_shape(kafka_broker, tmp_path):
    args = argparse.Namespace(
        partitions=6,
        peer_rcvbuf=1 << 20,
        peer_seconds=0.5,
        peer_rates=[2000],
        peer_batched_rate=200,
        batch=10,
        linger_ms=20,
        batch_size=65536,
        workers=1,
        producers=1,
        fast_level=1,
    )
    base = {
        "gateway": {"devices": 10, "expected_readings": 100, "readings": 100, "readings_per_s": 1.0},
        "bare_send": {"readings": 100, "readings_per_s": 1.0, "cpu_s_per_100k": 1.0},
        "bare_batch": {"readings": 100, "readings_per_s": 1.0, "cpu_s_per_100k": 1.0, "failed": 0},
    }
    base["gateway"]["gateway_cpu_s_per_100k"] = 1.0
    records = [(b"dev-%d" % i, b'{"n":%d}' % i) for i in range(500)]
    peers = run_peers(kafka_broker.bootstrap, args, tmp_path, base, records, (None, "not built in tests"))
    peers = json.loads(json.dumps(peers))  # what the report file holds

    assert set(peers) >= {"note", "settings", "rows", "skipped", "load_before", "load_after"}
    assert peers["settings"]["acks"] == "all" and peers["settings"]["compression"] == "lz4"
    # the gateway's legacy rows compress at the fast level, as librdkafka and the Go clients do by default
    assert peers["settings"]["compression_level"]["gateway (legacy path)"] == 1
    assert peers["skipped"] == [{"peer": "otelcol udplog->batch->kafka", "reason": "not built in tests"}]
    by_name: dict[str, list[dict]] = {}
    for row in peers["rows"]:
        assert ROW_KEYS <= set(row), sorted(ROW_KEYS - set(row))
        by_name.setdefault(row["peer"], []).append(row)
    assert set(by_name) == {
        "gateway (ibp1, acked)",
        "gateway (legacy path)",
        "rsyslog imudp->omkafka",
        "aiokafka send()",
        "aiokafka send_batch()",
        "confluent-kafka produce()",
        "confluent-kafka produce_batch()",
    }
    # rsyslog takes the batched datagrams too (as opaque records); the gateway's legacy path does not
    assert [r["datagram_format"] for r in by_name["rsyslog imudp->omkafka"]] == ["legacy-bin", "ibp1-batched"]
    assert [r["datagram_format"] for r in by_name["gateway (legacy path)"]] == ["legacy-bin"]
    for name in ("gateway (legacy path)", "rsyslog imudp->omkafka"):
        for row in by_name[name]:
            assert row["hmac"] is False and row["ack"] is False
            assert row["lost"] == 0 and row["landed_readings"] == row["sent_readings"] > 0, row
            assert set(row["kernel_udp"]) == {"in_errors", "rcvbuf_errors"}
    assert by_name["gateway (ibp1, acked)"][0]["hmac"] is True and by_name["gateway (ibp1, acked)"][0]["ack"]
    for name in ("confluent-kafka produce()", "confluent-kafka produce_batch()"):
        assert by_name[name][0]["landed_readings"] == 500 and by_name[name][0]["lost"] == 0
    rows = peer_rows(peers)
    assert len(rows) == len(peers["rows"]) and all(len(r) == len(PEER_COLUMNS) for r in rows)
