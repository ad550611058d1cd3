"""A minimal asyncio HTTP/1.1 server for /metrics, /healthz and /readyz (GET/HEAD, Connection: close)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Route = Callable[[], tuple[int, str, bytes]]  # -> (status, content type, body)

_REASONS = {
    200: "OK",
    404: "Not Found",
    405: "Method Not Allowed",
    400: "Bad Request",
    503: "Service Unavailable",
}


class HttpServer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port, limit=16384)
        bound: int = self.server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3:
                status, ctype, body = 400, "text/plain", b"bad request\n"
            else:
                method, target = parts[0], parts[1].split("?", 1)[0]
                route = self.routes.get(target)
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found: try /metrics, /healthz, /readyz\n"
                elif method not in ("GET", "HEAD"):
                    status, ctype, body = 405, "text/plain", b"GET or HEAD only\n"
                else:
                    status, ctype, body = route()
                    if method == "HEAD":
                        body_len = len(body)
                        body = b""
                        writer.write(_head(status, ctype, body_len))
                        await writer.drain()
                        return
            writer.write(_head(status, ctype, len(body)) + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


def _head(status: int, ctype: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'OK')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()
