"""``bench.delay_proxy`` (the bench's stand-in for a slow broker ack), on real TCP sockets.

It must delay what comes back by the configured time, pass what goes out at once, and stop on SIGTERM
without the CancelledError traceback it used to print with connections still open (issue 16, item 4).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

DELAY_MS = 300


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _run() -> tuple[float, int | None, str]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target = server.sockets[0].getsockname()[1]
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.delay_proxy", "--target", f"127.0.0.1:{target}",
        "--delay-ms", str(DELAY_MS), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proxy.stdout is not None
    line = (await asyncio.wait_for(proxy.stdout.readline(), 30)).decode()
    port = int(line.split("port=")[1].split()[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"ping")
    await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
    round_trip = time.monotonic() - started
    # more bytes still queued in the proxy when it is told to stop
    writer.write(b"x" * 100_000)
    await writer.drain()
    await asyncio.sleep(0.05)
    proxy.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proxy.communicate(), 15)
    writer.close()
    server.close()
    return round_trip, proxy.returncode, err.decode()


def test_delays_the_return_path_and_stops_cleanly_with_open_connections():
    round_trip, rc, stderr = asyncio.run(_run())
    assert round_trip >= DELAY_MS / 1000 * 0.95, f"round trip {round_trip:.3f} s, expected >= {DELAY_MS} ms"
    assert rc == 0
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
