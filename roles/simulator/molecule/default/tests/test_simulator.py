"""Verify the simulator role: the agent runs as a hardened service and its API demands mutual TLS and
the token.

Runs on the control node (Molecule's testinfra verifier) and talks to each agent's API over the
scenario's network, the way the controller does: HTTPS, trusting the CA the role generated in the
scenario's secrets directory, presenting the controller's client certificate.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import testinfra.utils.ansible_runner

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
# In inventory order (the order Ansible's groups['agents'] has), not sorted.
AGENTS = list(testinfra.utils.ansible_runner.itergroup(RUNNER.inventory, "agents"))
testinfra_hosts = AGENTS

SERVICE = "iot-simulator-agent"
TOKEN = "/etc/iot-simulator/token"
MASTER_KEY = "/etc/iot-simulator/master_key"
FACT = "/etc/ansible/facts.d/iot_simulator.fact"
SMOKE = Path(__file__).resolve().parents[5] / "scenarios" / "smoke.yml"
TLS_DIR = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / "tls"


def _tls(client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(TLS_DIR / "ca.pem"))
    if client_cert:
        ctx.load_cert_chain(str(TLS_DIR / "controller.pem"), str(TLS_DIR / "controller.key"))
    return ctx


def _fact(host) -> dict:
    return json.loads(host.file(FACT).content_string)


def _base(host) -> str:
    address = host.ansible.get_variables().get("ansible_host") or host.backend.get_hostname()
    return f"https://{address}:{_fact(host)['api_port']}"


def _call(
    host,
    method: str,
    path: str,
    token: str | None,
    body: dict | None = None,
    ctx: ssl.SSLContext | None = None,
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(_base(host) + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx or _tls()) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _token(host) -> str:
    return host.file(TOKEN).content_string.strip()


def test_service_running_enabled_as_dedicated_user(host):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled
    props = host.check_output(
        f"systemctl show {SERVICE} -p User -p NoNewPrivileges -p ProtectSystem -p PrivateTmp"
    )
    assert "User=iot-sim" in props
    assert "NoNewPrivileges=yes" in props
    assert "ProtectSystem=strict" in props
    assert "PrivateTmp=yes" in props
    pid = host.check_output(f"systemctl show {SERVICE} -p MainPID --value")
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "iot-sim"


VENV = "/opt/iot-simulator/venv"


def test_venv_holds_the_agent_extra_only(host):
    """The role installs iot-burst-pilot[agent]: the agent imports, and what only the audit and the
    report need (matplotlib, hdrhistogram, boto3, aiokafka) is absent because nothing pulls it in."""
    host.run_test(f"{VENV}/bin/python -c 'import simulator.orchestration.agent'")
    shown = host.run(f"{VENV}/bin/python -m pip show matplotlib hdrhistogram boto3 aiokafka")
    assert "Name:" not in shown.stdout, shown.stdout
    missing = shown.stderr.partition("not found:")[2]
    assert all(name in missing for name in ("matplotlib", "hdrhistogram", "boto3", "aiokafka")), shown.stderr
    # ... while the agent extra's own dependencies were resolved by pip from the wheel's metadata.
    present = host.check_output(
        f"{VENV}/bin/python -m pip show iot-burst-pilot aiohttp cryptography pydantic"
    )
    assert present.count("Name:") == 4, present


def test_venv_loads_the_native_device_path(host):
    """simulator_native (default true): the agent's devices build their datagrams with ibp_native, the
    build `make dist` made for this tree (same API as ibp/native.py), not the pure-Python reference."""
    out = host.check_output(f"{VENV}/bin/python -c 'from ibp import native; print(native.load()[1])'")
    assert out.strip() == "ibp_native imported", out


def test_secrets_readable_by_the_service_only(host):
    for path in (TOKEN, MASTER_KEY):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "iot-sim", 0o640)
    assert len(_token(host)) >= 16
    assert len(bytes.fromhex(host.file(MASTER_KEY).content_string.strip())) == 32
    assert host.run(f"runuser -u nobody -- cat {TOKEN}").rc != 0


def test_tls_files_deployed_with_the_key_for_the_agent_only(host):
    key = host.file("/etc/iot-simulator/agent.key")
    assert (key.user, key.group, key.mode) == ("iot-sim", "iot-sim", 0o600)
    assert host.run("runuser -u nobody -- cat /etc/iot-simulator/agent.key").rc != 0
    for name in ("ca.pem", "agent.pem"):
        assert host.file(f"/etc/iot-simulator/{name}").mode == 0o644


def test_api_refuses_plain_http_and_a_client_without_certificate(host):
    address = host.ansible.get_variables().get("ansible_host") or host.backend.get_hostname()
    with contextlib.suppress(OSError, http.client.HTTPException):
        with urllib.request.urlopen(f"http://{address}:{_fact(host)['api_port']}/status", timeout=10):
            raise AssertionError("the API answered plain HTTP")
    try:
        _call(host, "GET", "/status", _token(host), ctx=_tls(client_cert=False))
    except (ssl.SSLError, ConnectionError, urllib.error.URLError, http.client.HTTPException):
        pass
    else:
        raise AssertionError("the API answered a client without a certificate")


def test_metrics_open_on_their_own_plain_port(host):
    address = host.ansible.get_variables().get("ansible_host") or host.backend.get_hostname()
    with urllib.request.urlopen(
        f"http://{address}:{_fact(host)['metrics_port']}/metrics", timeout=10
    ) as resp:
        assert "# TYPE" in resp.read().decode()


def test_api_answers_with_the_token(host):
    status, body = _call(host, "GET", "/status", _token(host))
    assert status == 200
    assert body["state"] in ("idle", "loaded", "aborted")


def test_api_refuses_without_or_with_a_wrong_token(host):
    assert _call(host, "GET", "/status", None)[0] == 401
    assert _call(host, "GET", "/status", "x" * 40)[0] == 401
    assert _call(host, "POST", "/abort", _token(host)[:-1])[0] == 401


def test_slice_is_the_position_in_the_agents_group(host):
    fact = _fact(host)
    assert fact["agent_count"] == len(AGENTS)
    assert fact["agent_index"] == AGENTS.index(host.backend.get_hostname())


def test_agent_takes_its_slice_of_the_fleet(host):
    """Load the smoke scenario with the recorded slice: the agent holds exactly its share of devices."""
    fact, token = _fact(host), _token(host)
    text = SMOKE.read_text()
    total = int(next(line.split(":")[1] for line in text.splitlines() if line.strip().startswith("count:")))
    body = {
        "scenario": text,
        "run_id": f"molecule-slice-{fact['agent_index']}",
        "agent_index": fact["agent_index"],
        "agent_count": fact["agent_count"],
        "gateway": "127.0.0.1:9",
    }
    try:
        status, loaded = _call(host, "POST", "/scenario", token, body)
        assert status == 200, loaded
        lo = fact["agent_index"] * total // fact["agent_count"]
        hi = (fact["agent_index"] + 1) * total // fact["agent_count"]
        assert loaded["devices"] == hi - lo
    finally:
        _call(host, "POST", "/abort", token)


def test_fault_tools_are_installed(host):
    assert host.exists("iptables") and host.exists("tc")


def test_a_killed_agent_resumes_its_run_from_the_state_dir(host):
    """SIGKILL mid-run: systemd restarts the agent, which picks the run up from its journal on disk."""
    import time

    fact, token = _fact(host), _token(host)
    state = host.file("/var/lib/iot-simulator")
    assert state.is_directory and state.user == "iot-sim" and state.mode == 0o700
    assert "--state-dir /var/lib/iot-simulator" in host.check_output(f"systemctl show {SERVICE} -p ExecStart")
    scenario = (
        "devices: {count: 50}\n"
        "phases:\n"
        "  - {name: normal, kind: normal, duration_s: 1}\n"
        "  - {name: outage, kind: outage, duration_s: 120}\n"
        "  - {name: recovery, kind: recovery, until: drained, max_s: 5}\n"
    )
    run_id = f"molecule-resume-{fact['agent_index']}"
    body = {
        "scenario": scenario,
        "run_id": run_id,
        "agent_index": 0,
        "agent_count": 1,
        "gateway": "127.0.0.1:9",
    }
    try:
        assert _call(host, "POST", "/scenario", token, body)[0] == 200
        assert _call(host, "POST", "/arm", token, {"t0": time.time() + 1})[0] == 200
        time.sleep(4)
        _, before = _call(host, "GET", "/status", token)
        assert before["state"] == "running" and before["phase"] == "outage", before
        assert host.file("/var/lib/iot-simulator/run.json").exists
        invocation = host.check_output(f"systemctl show {SERVICE} -p InvocationID --value")
        host.run_expect([0], f"kill -KILL $(systemctl show -p MainPID --value {SERVICE})")
        deadline = time.time() + 60
        after: dict = {}
        while time.time() < deadline:
            time.sleep(1)
            try:
                status, after = _call(host, "GET", "/status", token)
            except OSError:
                continue
            if status == 200 and after.get("run_id") == run_id and after.get("state") == "running":
                break
        assert host.check_output(f"systemctl show {SERVICE} -p InvocationID --value") != invocation
        assert after.get("run_id") == run_id and after.get("state") == "running", after
        assert after["phase"] == "outage" and after["buffered"] >= before["buffered"] > 0, (before, after)
    finally:
        _call(host, "POST", "/abort", token)
