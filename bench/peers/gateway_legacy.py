"""The gateway itself under the peers' load: legacy one-reading datagrams (no HMAC, no ack), so its row
is measured exactly like rsyslog's and the collector's. Its batched, authenticated, acked figure is the
bench's end-to-end row (``no_latency.gateway``), which the peer table repeats.
"""

from __future__ import annotations

from pathlib import Path

from harness.gateway import start_gateway


class GatewayLegacyPeer:
    name = "gateway (legacy path)"
    takes_batched = False  # its batched datagrams need the fleet's stop-and-wait ack loop: see e2e row

    def __init__(
        self, bootstrap: str, topic: str, rcvbuf: int, workdir: Path, workers: int, kafka: dict
    ) -> None:
        self.gw = start_gateway(
            bootstrap, topic, workdir, udp={"workers": workers, "rcvbuf_bytes": rcvbuf}, kafka=kafka
        )
        self.port = self.gw.udp_port

    @property
    def pid(self) -> int:
        return self.gw.process.pid

    def stop(self) -> int | None:
        return self.gw.stop()
