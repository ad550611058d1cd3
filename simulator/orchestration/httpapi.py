"""A minimal JSON-over-HTTP/1.1 server and client on asyncio streams (one request per connection).

Enough for the agent's control API; no extra dependency (aiohttp would be one more package in every
agent's wheelhouse for five routes). With an ``ssl`` context the server speaks only TLS (mutual TLS when
the context requires client certificates: simulator/orchestration/tls.py). Every request must carry
``Authorization: Bearer <token>``, compared in constant time; anything else gets 401 before the handler
runs and before its body is read. A declared body over MAX_BODY gets 413 unread. The only exception to
the token is a GET of a path in ``open_get`` (the agent's read-only Prometheus ``/metrics``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
OpenGet = Callable[[], tuple[str, bytes]]  # -> (content type, body)
# The largest real request is POST /scenario, whose body carries the scenario's YAML text (a few KiB;
# the biggest in scenarios/ is under 10 KiB): 1 MiB leaves room without letting a peer make the
# agent buffer much.
MAX_BODY = 1024 * 1024
HEAD_TIMEOUT_S = 10
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
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
    token: str | None,
    handler: Handler | None,
    host: str,
    port: int,
    open_get: dict[str, OpenGet] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Awaitable[asyncio.Server]:
    """Serve ``handler`` behind the token; ``handler`` None serves only ``open_get`` (a metrics port)."""
    expected = f"Bearer {token}".encode() if token is not None else None
    open_get = open_get or {}

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
            lines = request.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if "transfer-encoding" in headers or length < 0:
                await _respond(writer, 400, {"error": "only a Content-Length body is accepted"})
                return
            if length > MAX_BODY:
                await _respond(writer, 413, {"error": f"request body over {MAX_BODY} bytes"})
                return
            if method == "GET" and path.split("?", 1)[0] in open_get:
                ctype, data = open_get[path.split("?", 1)[0]]()
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode() + data)
                await writer.drain()
                return
            if handler is None or expected is None:
                await _respond(writer, 404, {"error": f"no route {method} {path} on this port"})
                return
            # constant time: the answer's timing tells nothing about how much of a guess was right
            if not hmac.compare_digest(headers.get("authorization", "").encode(), expected):
                await _respond(
                    writer, 401, {"error": "missing or wrong token (Authorization: Bearer <token>)"}
                )
                return
            body = await asyncio.wait_for(reader.readexactly(length), HEAD_TIMEOUT_S) if length else b""
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                await _respond(writer, 400, {"error": "request body is not JSON"})
                return
            status, out = await handler(method, path, payload)
            await _respond(writer, status, out)
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ValueError,
            ConnectionError,
            ssl.SSLError,
        ):
            pass
        finally:
            writer.close()

    # a TLS handshake that fails (plain HTTP, an untrusted or missing client certificate) closes the
    # connection before on_conn runs: no request is ever parsed from such a peer
    return asyncio.start_server(
        on_conn, host, port, ssl=ssl_context, ssl_handshake_timeout=HEAD_TIMEOUT_S if ssl_context else None
    )


async def request(
    base: str,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    wait_s: float = 30,
    ssl_context: ssl.SSLContext | None = None,
) -> Any:
    """``base`` is host:port; with ``ssl_context`` over TLS, the certificate checked against ``host``.
    Raises HttpError on a non-2xx answer."""
    host, port = base.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host, int(port), ssl=ssl_context, server_hostname=host.strip("[]") if ssl_context else None
        ),
        wait_s,
    )
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
