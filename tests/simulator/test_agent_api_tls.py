"""The agent's control API closed: mutual TLS, the token, a size limit, each refusal without side effect.

A real ``python -m simulator agent`` serves the API over TLS with certificates from simulator/orchestration/tls.py
(a CA made for the test, the agent's server certificate for 127.0.0.1, the controller's client
certificate). Each hostile request below is sent over a real socket, then the agent's state is read
with the right credentials: still idle, nothing loaded or armed. The scenario is a real one, so a
request that got through would have loaded it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import ssl
import time
from pathlib import Path

import pytest

from simulator.orchestration import tls, web

SCENARIO = """\
name: api-refusals
devices: {count: 10}
phases:
  - {name: normal, kind: normal, duration_s: 1}
"""


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tls"
    tls.main(["--dir", str(d), "--controller", "--agent", "local", "--san", "127.0.0.1"])
    return d


@pytest.fixture
def agent(agent_factory, tls_dir: Path):
    (a,) = agent_factory.start(1, secrets.token_bytes(32), tls_dir=tls_dir)
    return a


def _good(tls_dir: Path) -> ssl.SSLContext:
    return tls.client_context(
        str(tls_dir / "ca.pem"), str(tls_dir / "controller.pem"), str(tls_dir / "controller.key")
    )


def _load_body() -> dict:
    return {
        "scenario": SCENARIO,
        "run_id": "api-refusals",
        "agent_index": 0,
        "agent_count": 1,
        "gateway": "127.0.0.1:9",
    }


def _call(agent, method: str, path: str, token: str | None, ctx: ssl.SSLContext | None, body=None):
    return asyncio.run(web.request(agent.address, method, path, token, body, wait_s=10, ssl_context=ctx))


def _state(agent, token: str, tls_dir: Path) -> dict:
    return _call(agent, "GET", "/status", token, _good(tls_dir))


def _assert_untouched(agent, token: str, tls_dir: Path) -> None:
    status = _state(agent, token, tls_dir)
    assert status["state"] == "idle", status
    assert status["t0"] is None and "run_id" not in status, status


def test_right_certificate_and_token_load_and_arm(agent, agent_factory, tls_dir: Path) -> None:
    """The control case: with the CA, the client certificate and the token the agent obeys."""
    ctx, token = _good(tls_dir), agent_factory.token
    assert _call(agent, "POST", "/scenario", token, ctx, _load_body())["state"] == "loaded"
    assert _call(agent, "POST", "/arm", token, ctx, {"t0": time.time() + 60})["state"] == "armed"
    assert _call(agent, "POST", "/abort", token, ctx)["state"] == "aborted"


def test_wrong_token_is_refused_without_side_effect(agent, agent_factory, tls_dir: Path) -> None:
    ctx = _good(tls_dir)
    for token in (None, agent_factory.token[:-1] + "x", agent_factory.token + "x", ""):
        with pytest.raises(web.HttpError) as err:
            _call(agent, "POST", "/scenario", token, ctx, _load_body())
        assert err.value.status == 401
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_plain_http_to_the_tls_port_is_refused(agent, agent_factory, tls_dir: Path) -> None:
    """A clear-text request, token included, gets no HTTP answer at all and changes nothing."""
    body = json.dumps(_load_body()).encode()
    head = (
        f"POST /scenario HTTP/1.1\r\nHost: {agent.address}\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Bearer {agent_factory.token}\r\nConnection: close\r\n\r\n"
    )
    host, port = agent.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head.encode() + body)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert not answer.startswith(b"HTTP/"), answer[:200]
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_client_that_does_not_trust_the_ca_is_refused(agent, agent_factory, tls_dir: Path, tmp_path):
    """A controller holding another CA refuses the agent's certificate (and sends nothing)."""
    other = tmp_path / "other"
    tls.main(["--dir", str(other), "--controller"])
    ctx = tls.client_context(
        str(other / "ca.pem"), str(tls_dir / "controller.pem"), str(tls_dir / "controller.key")
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        _call(agent, "POST", "/scenario", agent_factory.token, ctx, _load_body())
    _assert_untouched(agent, agent_factory.token, tls_dir)


@pytest.mark.parametrize("client", ["none", "foreign", "agent-server-cert"])
def test_client_without_a_valid_client_certificate_is_refused(
    agent, agent_factory, tls_dir: Path, tmp_path: Path, client: str
) -> None:
    """Mutual TLS: no client certificate, one from another CA, or an agent's own server certificate
    (serverAuth only: a compromised agent host cannot drive the others) are refused in the handshake."""
    ctx = tls.client_context(str(tls_dir / "ca.pem"))
    if client == "foreign":
        other = tmp_path / "other"
        tls.main(["--dir", str(other), "--controller"])
        ctx.load_cert_chain(str(other / "controller.pem"), str(other / "controller.key"))
    elif client == "agent-server-cert":
        ctx.load_cert_chain(str(tls_dir / "agent-local.pem"), str(tls_dir / "agent-local.key"))
    # TLS 1.3 completes the client's side of the handshake before the server checks the certificate:
    # the refusal shows as an alert (SSLError) or a closed connection on the first read
    with pytest.raises((ssl.SSLError, ConnectionError, web.HttpError, IndexError, ValueError)):
        _call(agent, "POST", "/scenario", agent_factory.token, ctx, _load_body())
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_oversized_body_gets_413_before_it_is_read(agent, agent_factory, tls_dir: Path) -> None:
    """A declared body over MAX_BODY is answered 413 at once: the agent does not wait for it."""
    host, port = agent.address.rsplit(":", 1)
    head = (
        f"POST /scenario HTTP/1.1\r\nHost: {agent.address}\r\nContent-Length: {web.MAX_BODY + 1}\r\n"
        f"Authorization: Bearer {agent_factory.token}\r\nConnection: close\r\n\r\n"
    )
    ctx = _good(tls_dir)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(head.encode() + b"{" * 4096)  # a start of the body, never the rest
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_largest_real_request_fits_the_limit() -> None:
    """POST /scenario with the biggest scenario in scenarios/ stays well under MAX_BODY."""
    root = Path(__file__).resolve().parents[2] / "scenarios"
    biggest = max(len(p.read_text()) for p in root.rglob("*.yml"))
    body = json.dumps({**_load_body(), "scenario": "x" * biggest}).encode()
    assert len(body) * 10 < web.MAX_BODY


def test_metrics_stay_open_on_their_own_plain_port(agent, agent_factory, tls_dir: Path) -> None:
    """Prometheus scrapes GET /metrics in plain HTTP without a token; that port serves nothing else."""
    import urllib.error
    import urllib.request

    with urllib.request.urlopen(f"http://{agent.metrics_address}/metrics", timeout=5) as resp:
        assert "# TYPE" in resp.read().decode()
    req = urllib.request.Request(
        f"http://{agent.metrics_address}/scenario",
        data=json.dumps(_load_body()).encode(),
        headers={"Authorization": f"Bearer {agent_factory.token}"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 404
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_agent_refuses_plain_http_off_loopback(tmp_path: Path) -> None:
    """Without a certificate the agent will not listen beyond loopback (the token would be in clear)."""
    from simulator.orchestration.agent import serve

    with pytest.raises(SystemExit, match="plain HTTP"):
        asyncio.run(serve("t" * 20, None, "0.0.0.0", 0))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/scenario", {**_load_body(), "agent_index": "first"}, "agent_index"),
        ("/scenario", {k: v for k, v in _load_body().items() if k != "gateway"}, "gateway"),
    ],
)
def test_body_that_does_not_fit_its_model_gets_400_naming_the_field(
    agent, agent_factory, tls_dir: Path, path: str, body: dict, field: str
) -> None:
    """api.py's models check every body: the answer names the field to fix, and nothing changes."""
    with pytest.raises(web.HttpError) as err:
        _call(agent, "POST", path, agent_factory.token, _good(tls_dir), body)
    assert err.value.status == 400
    assert err.value.body["error"].startswith(f"{field}: "), err.value.body
    _assert_untouched(agent, agent_factory.token, tls_dir)


def test_arm_with_a_bad_t0_gets_400_and_stays_loaded(agent, agent_factory, tls_dir: Path) -> None:
    ctx, token = _good(tls_dir), agent_factory.token
    assert _call(agent, "POST", "/scenario", token, ctx, _load_body())["state"] == "loaded"
    with pytest.raises(web.HttpError) as err:
        _call(agent, "POST", "/arm", token, ctx, {"t0": "soon"})
    assert err.value.status == 400 and err.value.body["error"].startswith("t0: "), err.value.body
    assert _state(agent, token, tls_dir)["state"] == "loaded"
