"""rsyslog ``imudp`` -> ``omkafka`` (Debian ``rsyslog`` + ``rsyslog-kafka``, librdkafka inside): the stock
syslog daemon a user would point UDP devices at instead of the gateway.

It runs as an unprivileged foreground process (``rsyslogd -n`` as ``nobody`` when the bench is root) with
its own config and work directory in a temp dir, never the system service. Two imudp input threads, the
raw datagram as the record value (``%rawmsg%``, control characters not escaped), lz4, acks=all, a 20 ms
linger, a 2-million-message in-memory ruleset queue. No HMAC, no ack: whatever it accepts is unverified
and a device never learns whether it landed.
"""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

from bench.peers.common import PeerProcess
from broker.kafka import free_port

RSYSLOGD = "/usr/sbin/rsyslogd"
OMKAFKA = Path("/usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so")

CONFIG = """\
global(workDirectory="{workdir}" maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")
module(load="imudp" threads="2" batchSize="128")
module(load="omkafka")
template(name="raw" type="string" string="%rawmsg%")
input(type="imudp" address="127.0.0.1" port="{port}" rcvbufSize="{rcvbuf}" ruleset="tokafka")
ruleset(name="tokafka" queue.type="LinkedList" queue.size="2000000" queue.dequeueBatchSize="1024") {{
  action(type="omkafka" broker=["{bootstrap}"] topic="{topic}" template="raw" partitions.auto="on"
         confParam=["compression.codec=lz4", "queue.buffering.max.ms={linger_ms}",
                    "batch.num.messages=10000", "queue.buffering.max.messages=1000000"]
         topicConfParam=["request.required.acks=-1"])
}}
"""


def available() -> str | None:
    """None when rsyslogd and omkafka are installed, else the reason the peer is skipped."""
    if not Path(RSYSLOGD).exists():
        return f"{RSYSLOGD} not installed (Debian package rsyslog; make setup installs it as root)"
    if not OMKAFKA.exists():
        return f"{OMKAFKA} not installed (Debian package rsyslog-kafka; make setup installs it as root)"
    return None


class RsyslogPeer(PeerProcess):
    name = "rsyslog imudp->omkafka"
    takes_batched = True  # a datagram is one message: batched datagrams land as one opaque record each
    log_name = "rsyslogd.log"

    def __init__(self, bootstrap: str, topic: str, rcvbuf: int, linger_ms: int = 20) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-rsyslog-"))
        self.port = free_port()
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(
            CONFIG.format(
                workdir=self.dir,
                port=self.port,
                rcvbuf=rcvbuf,
                bootstrap=bootstrap,
                topic=topic,
                linger_ms=linger_ms,
            )
        )
        kwargs: dict = {}
        if os.geteuid() == 0:  # never run the peer as root: drop to nobody, who must own its work dir
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            os.chmod(self.dir, 0o755)
            kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        self._launch(
            [RSYSLOGD, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")], "rsyslogd", **kwargs
        )
