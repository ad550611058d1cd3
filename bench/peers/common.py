"""What every peer measurement shares: topics, landed counts from end offsets, kernel UDP counters.

Landed readings are counted in Kafka itself (the sum of the topic's end offsets, one topic per peer and
load), never from a peer's own metrics: a peer that accepts a datagram and loses it later must show the
loss. Kernel counters (/proc/net/snmp) are host-wide, so other jobs on a shared machine can add to them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap: str, partitions: int, prefix: str = "peer") -> str:
    """A fresh topic, so the end offsets count only this measurement's records."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)], operation_timeout=30).values():
        future.result(timeout=60)
    return name


def end_offsets_total(bootstrap: str, topic: str, partitions: int) -> int:
    """Records in ``topic``: the sum of its partitions' high watermarks (what acks=all producers landed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-peers-{uuid.uuid4().hex[:6]}"})
    try:
        total = 0
        for p in range(partitions):
            for attempt in range(5):
                try:
                    total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    break
                except KafkaException:
                    if attempt == 4:
                        raise
                    time.sleep(0.5)
        return total
    finally:
        consumer.close()


def wait_landed(
    bootstrap: str, topic: str, partitions: int, expected: int, quiet_s: float, timeout_s: float
) -> tuple[int, float]:
    """Poll the end offsets until ``expected`` landed or nothing changed for ``quiet_s`` (a peer's queues drained).

    Returns the count and the ``time.monotonic()`` of the poll that first saw it: a peer that lost
    datagrams is timed to its last record, not to the end of the quiet wait that proved nothing more came.
    """
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while True:
        landed = end_offsets_total(bootstrap, topic, partitions)
        now = time.monotonic()
        if landed != last:
            last, last_change = landed, now
        if landed >= expected or now > deadline:
            return landed, last_change
        if now - last_change >= quiet_s:
            return landed, last_change
        time.sleep(0.3)


def udp_errors() -> dict[str, int]:
    """Host-wide Udp InErrors and RcvbufErrors from /proc/net/snmp."""
    lines = [
        line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")
    ]
    fields = dict(zip(lines[0][1:], (int(x) for x in lines[1][1:]), strict=True))
    return {"in_errors": fields.get("InErrors", 0), "rcvbuf_errors": fields.get("RcvbufErrors", 0)}


def udp_errors_delta(before: dict[str, int]) -> dict[str, int]:
    after = udp_errors()
    return {k: after[k] - before[k] for k in before}


def wait_udp_bound(port: int, timeout_s: float = 20.0) -> bool:
    """True once something listens on UDP ``port`` on loopback (from /proc/net/udp, no datagram sent)."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                text = Path(table).read_text()
            except OSError:
                continue
            if any(line.split()[1] in (want, f"00000000:{port:04X}") for line in text.splitlines()[1:]):
                return True
        time.sleep(0.1)
    return False


class PeerProcess:
    """A peer daemon run from its own temp dir (config, log, work files): start, log tail, stop.

    Subclasses write their config into ``self.dir`` and call :meth:`_launch`; ``stop`` removes the dir.
    """

    dir: Path
    port: int
    log_name: str

    def _launch(self, argv: list[str], what: str, wait_s: float = 20.0, **popen: Any) -> None:
        """Start ``argv`` with its output in ``self.dir/log_name``; raise with the log when it does not
        bind UDP ``self.port`` within ``wait_s``."""
        self.log = open(self.dir / self.log_name, "wb")
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, **popen)
        if not wait_udp_bound(self.port, wait_s) or self.process.poll() is not None:
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"{what} did not listen on UDP {self.port}: {tail}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        self.log.flush()
        return (self.dir / self.log_name).read_text(errors="replace")[-1500:]

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.process.returncode
