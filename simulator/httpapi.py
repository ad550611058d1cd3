"""A minimal JSON-over-HTTP/1.1 server and client on asyncio streams (one request per connection).

Enough for the agent's control API; no extra dependency. Every request must carry
``Authorization: Bearer <token>``; anything else gets 401 before the handler runs. The only exception is
a GET of a path in ``open_get`` (the agent's read-only Prometheus ``/metrics``), served without a token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
OpenGet = Callable[[], tuple[str, bytes]]  # -> (content type, body)
MAX_BODY = 64 * 1024 * 1024
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    500: "Error",
}


class HttpError(RuntimeError):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


async def _respond(writer: asyncio.StreamWriter, status: int, body: Any) -> None:
    data = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()


def serve(
    token: str, handler: Handler, host: str, port: int, open_get: dict[str, OpenGet] | None = None
) -> Awaitable[asyncio.Server]:
    expected = f"Bearer {token}".encode()
    open_get = open_get or {}

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            lines = request.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY:
                await _respond(writer, 400, {"error": "request body too large"})
                return
            body = await reader.readexactly(length) if length else b""
            if method == "GET" and path.split("?", 1)[0] in open_get:
                ctype, data = open_get[path.split("?", 1)[0]]()
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode() + data)
                await writer.drain()
                return
            if not hmac.compare_digest(headers.get("authorization", "").encode(), expected):
                await _respond(
                    writer, 401, {"error": "missing or wrong token (Authorization: Bearer <token>)"}
                )
                return
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                await _respond(writer, 400, {"error": "request body is not JSON"})
                return
            status, out = await handler(method, path, payload)
            await _respond(writer, status, out)
        except (asyncio.IncompleteReadError, TimeoutError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    return asyncio.start_server(on_conn, host, port)


async def request(
    base: str, method: str, path: str, token: str | None, body: Any = None, wait_s: float = 30
) -> Any:
    """``base`` is host:port. Raises HttpError on a non-2xx answer."""
    host, port = base.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), wait_s)
    try:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: {base}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n"
        if token is not None:
            head += f"Authorization: Bearer {token}\r\n"
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), wait_s)
    finally:
        writer.close()
    head_b, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head_b.split(b" ", 2)[1])
    out = json.loads(payload) if payload else None
    if not 200 <= status < 300:
        raise HttpError(status, out)
    return out
