"""OpenTelemetry Collector: ``udplog`` receiver -> ``batch`` processor -> ``kafka`` exporter (``encoding: raw``),
the vendor-neutral pipeline a user would assemble instead of the gateway.

The binary is this project's own (``bench/peers/otelcol/main.go`` + ``go.mod``: only those three
components), built by ``scripts/build-otelcol.sh`` into ``.cache/tools/bin/`` when the bench runs, never in
``make test``; if it cannot be built the bench skips this peer and prints why. One log record per datagram
(``one_log_per_packet``, ``encoding: nop`` so the bytes are not re-decoded), two async readers and
two processors (as rsyslog's two input threads), lz4, acks=all (-1), a 20 ms
producer linger. The config names the receiver ``udp_log`` (``udplog`` is its deprecated alias). The records
land JSON-quoted with invalid UTF-8 replaced (the raw marshaler writes the body as a string), so the
collector's records are counted, not byte-compared. The udp input has no receive-buffer option, so its socket gets the kernel default
(net.core.rmem_default), unlike the other peers. No HMAC, no ack.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.peers.common import PeerProcess
from broker.kafka import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-otelcol.sh"

CONFIG = """\
receivers:
  udp_log:
    listen_address: "127.0.0.1:{port}"
    one_log_per_packet: true
    encoding: nop
    multiline:
      line_end_pattern: ""
    async:
      readers: 2
      processors: 2
processors:
  batch:
    send_batch_size: 8192
    timeout: 20ms
exporters:
  kafka:
    brokers: ["{bootstrap}"]
    logs:
      topic: "{topic}"
      encoding: raw
    producer:
      required_acks: -1
      compression: lz4
      linger: {linger_ms}ms
      max_message_bytes: 1000000
    sending_queue:
      enabled: true
      queue_size: 2000
    retry_on_failure:
      enabled: true
service:
  telemetry:
    logs:
      level: warn
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [udp_log]
      processors: [batch]
      exporters: [kafka]
"""


def build(timeout_s: float = 1800.0) -> tuple[Path | None, str]:
    """Build (or reuse) the collector; (path, "") or (None, the reason with the command's output tail)."""
    if shutil.which("go") is None and not (ROOT / ".cache/tools/bin/otelcol-peer").exists():
        return None, "no Go toolchain on PATH to build bench/peers/otelcol (scripts/build-otelcol.sh)"
    try:
        result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, f"scripts/build-otelcol.sh did not finish within {timeout_s:.0f}s"
    if result.returncode != 0:
        return None, f"scripts/build-otelcol.sh exit {result.returncode}: {result.stderr.strip()[-800:]}"
    path = Path(result.stdout.strip().splitlines()[-1])
    return (
        (path, "")
        if path.exists()
        else (None, f"scripts/build-otelcol.sh printed no binary: {result.stdout!r}")
    )


class OtelcolPeer(PeerProcess):
    name = "otelcol udplog->batch->kafka"
    takes_batched = True  # one_log_per_packet: a batched datagram lands as one opaque record
    log_name = "otelcol.log"

    def __init__(self, binary: Path, bootstrap: str, topic: str, rcvbuf: int, linger_ms: int = 20) -> None:
        del rcvbuf  # the udp input cannot set it; see the module docstring
        self.dir = Path(tempfile.mkdtemp(prefix="bench-otelcol-"))
        self.port = free_port()
        conf = self.dir / "config.yaml"
        conf.write_text(CONFIG.format(port=self.port, bootstrap=bootstrap, topic=topic, linger_ms=linger_ms))
        self._launch([str(binary), "--config", f"file:{conf}"], "otelcol-peer", wait_s=30)
