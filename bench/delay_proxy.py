"""A TCP proxy that delays every broker -> client byte by a fixed time (a stand-in for AutoMQ's S3 WAL ack).

    python -m bench.delay_proxy --listen 127.0.0.1:0 --target 127.0.0.1:9092 --delay-ms 250

Client -> broker bytes pass at once; broker -> client chunks are queued with their arrival time and
written ``delay`` later, in order, so every response (produce acks, metadata) arrives ``delay`` late
while many requests stay in flight. Prints ``event=listening port=N`` once ready; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(1 << 20):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _delayed_pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read_side() -> None:
        try:
            while chunk := await reader.read(1 << 20):
                queue.put_nowait((time.monotonic() + delay, chunk))
        except ConnectionError:
            pass
        queue.put_nowait((time.monotonic() + delay, b""))

    reading = asyncio.create_task(read_side())
    try:
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        reading.cancel()
        writer.close()


class DelayProxy:
    """Accepts clients and pipes each to its own broker connection.

    Every open pair is tracked so ``close()`` can end them itself: a handler still running when the
    loop shuts down is cancelled by asyncio, and the streams module logs that cancellation as an
    unhandled exception (the traceback every ``make bench`` used to print at the end).
    """

    def __init__(self, target_host: str, target_port: int, delay_s: float) -> None:
        self.target = (target_host, target_port)
        self.delay = delay_s
        self.server: asyncio.base_events.Server | None = None
        self._pairs: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._connection, host, port)
        return self.server.sockets[0].getsockname()[1]

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        pair = asyncio.ensure_future(
            asyncio.gather(
                _pump(client_r, broker_w),
                _delayed_pump(broker_r, client_w, self.delay),
                return_exceptions=True,
            )
        )
        self._pairs.add(pair)
        try:
            # shield: closing the proxy cancels the pair, not this handler, which then returns normally
            await asyncio.shield(pair)
        except asyncio.CancelledError:
            pair.cancel()
        finally:
            self._pairs.discard(pair)
            client_w.close()
            broker_w.close()

    async def close(self, timeout_s: float = 2.0) -> None:
        """Stop accepting, end every open pair (queued delayed bytes are dropped), wait for the handlers."""
        if self.server is not None:
            self.server.close()
        pairs = list(self._pairs)
        for pair in pairs:
            pair.cancel()
        if pairs:
            await asyncio.wait(pairs, timeout=timeout_s)
        # let each handler run its finally block before the loop goes away
        await asyncio.sleep(0)
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), timeout_s)


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(args: argparse.Namespace) -> int:
    proxy = DelayProxy(*_hostport(args.target), args.delay_ms / 1000.0)
    port = await proxy.start(*_hostport(args.listen))
    print(f"event=listening port={port} target={args.target} delay_ms={args.delay_ms}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_proxy")
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=250.0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_main(args))
    return uvloop.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
