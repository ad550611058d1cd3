"""Peers in the same run: what a user would deploy instead of the gateway for "UDP datagrams -> Kafka",
measured by ``make bench`` under the same load, against the same broker, with the same topic settings.

UDP peers (one file each): the gateway's own legacy path (``gateway_legacy``), rsyslog imudp -> omkafka
(``rsyslog``), the OpenTelemetry Collector udplog -> batch -> kafka (``otelcol``). Producer ceilings with
no UDP in front: confluent-kafka ``produce()`` / ``produce_batch()`` (``confluent``) next to the bench's
bare aiokafka ``send()`` / ``send_batch()`` rows. Every topic: the bench's partitions, acks=all, lz4; every
UDP socket that can set it: the same receive buffer.

The load is one reading per datagram in the pilot's legacy binary format at fixed rates (every UDP peer
takes it), plus the gateway's batched IBP/1 datagrams for the peers that take any datagram (rsyslog, the
collector: each lands as one opaque record, not split into readings, nothing verified). For each run: what
landed in Kafka (end offsets of a fresh topic), the loss (sent - landed), the peer process's CPU seconds
per 100k landed readings (/proc/<pid>/stat, its whole tree), the host's kernel UDP receive errors
(/proc/net/snmp delta; host-wide). Peers have no HMAC and no ack: the table says so on every row.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.cpu import load_average, tree_cpu_s
from bench.peers import common, confluent, otelcol, rsyslog, sender
from bench.peers.gateway_legacy import GatewayLegacyPeer

NOTE = (
    "Peers have no HMAC and no ack: they land whatever reaches them, unverified, and a device never learns "
    "whether it landed. The gateway's legacy rows are the same (legacy devices get no ack); only its "
    "ibp1 end-to-end row is authenticated and acked."
)


def _udp_row(
    peer_name: str, peer_factory, bootstrap: str, partitions: int, load: dict, datagrams: list[bytes]
) -> dict:
    topic = common.create_topic(bootstrap, partitions, prefix="peer")
    peer = peer_factory(topic)
    try:
        warm = sender.send_at_rate("127.0.0.1", peer.port, datagrams[:2000], 10_000)
        base, _ = common.wait_landed(bootstrap, topic, partitions, warm["sent"], quiet_s=2.0, timeout_s=30)
        errors0, cpu0 = common.udp_errors(), tree_cpu_s(peer.pid)
        t0 = time.monotonic()
        sent = sender.send_at_rate("127.0.0.1", peer.port, datagrams, load["rate"])
        t_sent = time.monotonic()
        total, t_end = common.wait_landed(
            bootstrap, topic, partitions, base + sent["sent"], quiet_s=3.0, timeout_s=90
        )
        landed_records = total - base
        cpu = tree_cpu_s(peer.pid) - cpu0
        errors = common.udp_errors_delta(errors0)
    finally:
        code = peer.stop()
    per = load["readings_per_datagram"]
    sent_readings, landed = sent["sent"] * per, landed_records * per
    return {
        "peer": peer_name,
        "kind": "udp",
        "hmac": False,
        "ack": False,
        "load": load["name"],
        "datagram_format": load["format"],
        "readings_per_datagram": per,
        "opaque_records": per > 1,
        "offered_datagrams_per_s": load["rate"],
        "achieved_datagrams_per_s": sent["achieved_per_s"],
        "sent_datagrams": sent["sent"],
        "sent_readings": sent_readings,
        "landed_readings": landed,
        "lost": sent_readings - landed,
        "loss_pct": round(100.0 * (sent_readings - landed) / sent_readings, 2) if sent_readings else None,
        "landed_readings_per_s": round(landed / (t_end - t0), 1),
        "drain_s": round(max(0.0, t_end - t_sent), 2),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_100k": round(cpu / max(1, landed) * 100_000, 3),
        "kernel_udp": errors,
        "sender_cpu_s": sent["sender_cpu_s"],
        "exit_code": code,
    }


def _loads(args) -> list[dict]:
    loads = [
        {
            "name": f"legacy 1/dgram @ {rate:,}/s",
            "format": "legacy-bin",
            "readings_per_datagram": 1,
            "rate": rate,
            "count": int(rate * args.peer_seconds),
        }
        for rate in args.peer_rates
    ]
    if args.peer_batched_rate > 0:
        rate = args.peer_batched_rate
        loads.append(
            {
                "name": f"ibp1 {args.batch}/dgram @ {rate:,}/s",
                "format": "ibp1-batched",
                "readings_per_datagram": args.batch,
                "rate": rate,
                "count": int(rate * args.peer_seconds),
            }
        )
    return loads


def _producer_rows(base: dict, bootstrap: str, partitions: int, records, args) -> list[dict]:
    rows = []
    for key, mode in (("bare_send", "send()"), ("bare_batch", "send_batch()")):
        r = base.get(key)
        if r is None:
            continue
        landed = r["readings"] - r.get("failed", 0)
        rows.append(_producer_row(f"aiokafka {mode}", r, landed, "acks counted (shared bench topic)"))
    for mode in ("produce", "produce_batch"):
        print(f"[peers] confluent-kafka {mode}() ceiling ...", flush=True)
        r = confluent.run(mode, bootstrap, partitions, records, args.linger_ms, args.batch_size)
        rows.append(_producer_row(f"confluent-kafka {mode}()", r, r["landed"], "end offsets"))
    return rows


def _producer_row(name: str, r: dict, landed: int, counted: str) -> dict:
    return {
        "peer": name,
        "kind": "producer ceiling",
        "hmac": False,
        "ack": False,
        "load": "records in memory, no UDP",
        "datagram_format": None,
        "readings_per_datagram": None,
        "sent_readings": r["readings"],
        "landed_readings": landed,
        "lost": r["readings"] - landed,
        "loss_pct": round(100.0 * (r["readings"] - landed) / r["readings"], 2),
        "landed_readings_per_s": r["readings_per_s"],
        "cpu_s_per_100k": r["cpu_s_per_100k"],
        "kernel_udp": None,
        "counted": counted,
    }


def _gateway_e2e_row(base: dict) -> dict:
    gw = base["gateway"]
    return {
        "peer": "gateway (ibp1, acked)",
        "kind": "udp end to end",
        "hmac": True,
        "ack": True,
        "load": f"loadgen fleet, {gw.get('devices', 0):,} devices, stop-and-wait",
        "datagram_format": "ibp1-batched",
        "readings_per_datagram": None,
        "sent_readings": gw["expected_readings"],
        "landed_readings": gw["readings"],
        "lost": gw["expected_readings"] - gw["readings"],
        "loss_pct": round(100.0 * (gw["expected_readings"] - gw["readings"]) / gw["expected_readings"], 2),
        "landed_readings_per_s": gw["readings_per_s"],
        "cpu_s_per_100k": gw["gateway_cpu_s_per_100k"],
        "kernel_udp": {"rcvbuf_errors": gw.get("kernel_udp_drops")},
        "counted": "acked readings (bench no-latency row)",
    }


def run_peers(
    bootstrap: str, args, workdir: Path, base: dict, records, otel: tuple[Path | None, str]
) -> dict:
    """Measure every peer; a peer that cannot run is listed under ``skipped`` with the reason.

    ``otel`` is :func:`otelcol.build`'s answer, obtained before the broker started so a first build does
    not compete with any measurement.
    """
    rcvbuf = args.peer_rcvbuf
    out: dict = {
        "note": NOTE,
        "load_before": load_average(),
        "settings": {
            "partitions": args.partitions,
            "acks": "all",
            "compression": "lz4",
            "compression_level": {
                "gateway (legacy path)": args.fast_level
                if args.fast_level is not None
                else "aiokafka default (9)",
                "rsyslog": "librdkafka default (lz4 fast mode)",
                "otelcol": "client default (lz4 fast mode)",
            },
            "rcvbuf_bytes": rcvbuf,
            "peer_seconds": args.peer_seconds,
            "rates_datagrams_per_s": args.peer_rates,
            "batched_rate_datagrams_per_s": args.peer_batched_rate,
            "linger_ms": {
                "rsyslog": 20,
                "otelcol": 20,
                "gateway": args.linger_ms,
                "producers": args.linger_ms,
            },
        },
        "rows": [_gateway_e2e_row(base)],
        "skipped": [],
    }
    peers: list[tuple[str, object, bool]] = []
    kafka = {
        "producers_per_worker": args.producers,
        "batch_size": args.batch_size,
        "linger_ms": args.linger_ms,
    }
    # librdkafka (rsyslog, confluent-kafka) and the collector's Go client compress lz4 in its fast mode by
    # default; aiokafka's default is level 9. The gateway's peer rows take the bench's fast level, so every
    # UDP peer pays the same compression (the ibp1 end-to-end row keeps level 9, like the bare producer).
    if args.fast_level is not None:
        kafka["compression_level"] = args.fast_level
    counter = [0]

    def gateway_factory(topic: str) -> GatewayLegacyPeer:
        counter[0] += 1
        return GatewayLegacyPeer(
            bootstrap, topic, rcvbuf, workdir / f"peer-gw-{counter[0]}", args.workers, kafka
        )

    peers.append((GatewayLegacyPeer.name, gateway_factory, GatewayLegacyPeer.takes_batched))
    reason = rsyslog.available()
    if reason is None:
        peers.append(
            (
                rsyslog.RsyslogPeer.name,
                lambda topic: rsyslog.RsyslogPeer(bootstrap, topic, rcvbuf),
                rsyslog.RsyslogPeer.takes_batched,
            )
        )
    else:
        out["skipped"].append({"peer": rsyslog.RsyslogPeer.name, "reason": reason})
    binary, reason = otel
    if binary is not None:
        peers.append(
            (
                otelcol.OtelcolPeer.name,
                lambda topic: otelcol.OtelcolPeer(binary, bootstrap, topic, rcvbuf),
                otelcol.OtelcolPeer.takes_batched,
            )
        )
    else:
        out["skipped"].append({"peer": otelcol.OtelcolPeer.name, "reason": reason})
    for skipped in out["skipped"]:
        print(f"[peers] skipping {skipped['peer']}: {skipped['reason']}", flush=True)

    loads = _loads(args)
    legacy = sender.legacy_datagrams(
        max((ld["count"] for ld in loads if ld["readings_per_datagram"] == 1), default=0)
    )
    batched = None
    for load in loads:
        if load["readings_per_datagram"] == 1:
            datagrams = legacy[: load["count"]]
        else:
            batched = batched or sender.batched_datagrams(load["count"], load["readings_per_datagram"])
            datagrams = batched
        for name, factory, takes_batched in peers:
            if load["readings_per_datagram"] > 1 and not takes_batched:
                continue
            print(f"[peers] {name}: {load['name']} for {args.peer_seconds:g}s ...", flush=True)
            try:
                out["rows"].append(_udp_row(name, factory, bootstrap, args.partitions, load, datagrams))
            except Exception as exc:  # one peer failing must not lose the others' figures
                out["skipped"].append(
                    {"peer": name, "load": load["name"], "reason": f"{type(exc).__name__}: {exc}"}
                )
                print(f"[peers] {name} failed: {exc}", flush=True)
    del legacy, batched
    out["rows"].extend(_producer_rows(base, bootstrap, args.partitions, records, args))
    out["load_after"] = load_average()
    return out
