"""The control API's transport on aiohttp: the agent's server side (token and size checks) and the
controller's client call. The routes themselves are in agent.py, the bodies in api.py.

With an ``ssl`` context the server speaks only TLS (mutual TLS when the context requires client
certificates: simulator/orchestration/tls.py); a failed handshake closes the connection before any
request is parsed. Every request must carry ``Authorization: Bearer <token>``, compared in constant
time in a middleware, so a wrong token gets 401 before any handler runs or any body is read. A
declared body over MAX_BODY gets 413 there too, unread (``client_max_size`` also stops a body that
grows past it while read). The only exception to the token is a GET of a path in ``open_get`` (the
agent's read-only Prometheus ``/metrics``). Every error answers JSON ``{"error": ...}`` (api.ErrorBody).
"""

from __future__ import annotations

import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

OpenGet = Callable[[], tuple[str, bytes]]  # -> (content type, body)
# The largest real request is POST /scenario, whose body carries the scenario's YAML text (a few KiB;
# the biggest in scenarios/ is under 10 KiB): 1 MiB leaves room without letting a peer make the
# agent buffer much.
MAX_BODY = 1024 * 1024
HEAD_TIMEOUT_S = 10


class HttpError(RuntimeError):
    """A non-2xx answer from an agent; ``body`` is its JSON (normally ``{"error": ...}``)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def _error(status: int, message: str) -> web.Response:
    # Connection: close: a refused peer's unread body is not waited for
    return web.json_response({"error": message}, status=status, headers={"Connection": "close"})


def app(token: str | None, open_get: dict[str, OpenGet] | None = None) -> web.Application:
    """An application whose middleware guards every route added to it; ``token`` None serves only
    ``open_get`` (a plain metrics port)."""
    expected = f"Bearer {token}".encode() if token is not None else None
    open_get = open_get or {}

    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if request.method == "GET" and request.path in open_get:
            ctype, data = open_get[request.path]()
            return web.Response(body=data, headers={"Content-Type": ctype})
        if expected is None:
            return _error(404, f"no route {request.method} {request.path} on this port")
        # constant time: the answer's timing tells nothing about how much of a guess was right
        got = request.headers.get("Authorization", "").encode("latin-1", "replace")
        if not hmac.compare_digest(got, expected):
            return _error(401, "missing or wrong token (Authorization: Bearer <token>)")
        if "Transfer-Encoding" in request.headers:
            return _error(400, "only a Content-Length body is accepted")
        if (request.content_length or 0) > MAX_BODY:
            return _error(413, f"request body over {MAX_BODY} bytes")
        try:
            return await handler(request)
        except web.HTTPException as exc:  # 404, 405, a body past client_max_size: JSON like the rest
            return _error(
                exc.status, exc.reason if exc.status != 413 else f"request body over {MAX_BODY} bytes"
            )

    return web.Application(middlewares=[guard], client_max_size=MAX_BODY)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, None when empty; raises 400 when it is not JSON."""
    data = await request.read()
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise web.HTTPBadRequest(reason="request body is not JSON") from None


async def start(
    application: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Listen; returns the runner (``await runner.cleanup()`` stops it) and the bound port."""
    # lingering_time 0: a refused request's unread body is not drained before the connection closes
    runner = web.AppRunner(application, access_log=None, lingering_time=0.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, shutdown_timeout=1.0)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, bound


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
    Raises HttpError on a non-2xx answer, ssl.SSLError when TLS fails, ConnectionError when the agent
    drops the connection, TimeoutError past ``wait_s``."""
    url = f"{'https' if ssl_context else 'http'}://{base}{path}"
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    timeout = aiohttp.ClientTimeout(sock_connect=wait_s, sock_read=wait_s)
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context else False, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.request(method, url, json=body, headers=headers) as resp,
        ):
            data = await resp.read()
            status = resp.status
    except ssl.SSLError:
        raise  # a certificate refused (aiohttp's certificate errors are ssl.SSLCertVerificationError)
    except aiohttp.ClientConnectionError as exc:
        raise ConnectionError(f"{base}: {exc}") from exc
    try:
        out = json.loads(data) if data else None
    except ValueError:
        out = data.decode(errors="replace")
    if not 200 <= status < 300:
        raise HttpError(status, out)
    return out
