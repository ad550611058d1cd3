"""The agent's answers as declared models (simulator/orchestration/api.py Status, AgentResults).

The controller parses every answer into its model: an agent that answers something malformed stops the
run with an error naming the agent, the request and the field (a real aiohttp server answers the bad
bodies here). And the models change nothing on the wire or in the bundle: a real agent's ``/results``,
run against the acking UDP sink (no broker), is what the controller writes to ``agents/agent-0.json``,
byte for byte, with the keys in the order the agent always wrote them.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web as aiohttp_web
from pydantic import ValidationError

from harness.sink import AckSink
from simulator.orchestration import api, controller, web
from simulator.orchestration.agent import Agent
from simulator.orchestration.errors import ControllerError
from simulator.scenario import parse

TOKEN = "test-token-0123456789abcdef"
SCENARIO = """\
name: answers
devices: {count: 20}
transport: {ack_timeout_ms: 300}
flush: {jitter_ms: 50}
phases:
  - {name: normal, kind: normal, duration_s: 1}
  - {name: outage, kind: outage, duration_s: 1}
  - {name: recovery, kind: recovery, until: drained, max_s: 20, after_drained_s: 0.5}
final_drain_s: 10
"""

# What runner.results writes, then the five keys the agent adds: the order of agents/agent-<i>.json.
RESULT_KEYS = [
    "run_id",
    "host",
    "agent_index",
    "agent_count",
    "status",
    "failure",
    "started",
    "finished",
    "devices",
    "gateway",
    "protocol",
    "send_path",
    "counters",
    "buffered_at_end",
    "max_tick_lag_ms",
    "markers",
    "samples",
    "expected",
    "t0",
    "start_skew_ms",
    "clock_offset_ms",
    "clock_source",
    "controller_offset_ms",
]


def test_idle_status_has_no_fleet_keys() -> None:
    """Before a scenario the answer has no fleet counters at all (not nulls), as before the models."""
    assert list(Agent(None).status().wire()) == ["state", "error", "t0", "phase", "now"]
    assert Agent(None).status().wire()["state"] == "idle"


def test_real_agent_results_reach_the_bundle_unchanged(agent_factory, tmp_path: Path) -> None:
    master = secrets.token_bytes(32)
    (agent,) = agent_factory.start(1, master)
    scn = parse(SCENARIO)

    async def go() -> tuple[Path, list[dict], Any, dict]:
        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(lambda: AckSink(master), local_addr=("127.0.0.1", 0))
        try:
            port = tr.get_extra_info("sockname")[1]
            out, results = await controller.run(
                [agent.address],
                agent_factory.token,
                scn,
                SCENARIO,
                f"127.0.0.1:{port}",
                "answers-run",
                tmp_path / "reports",
                lead_s=1.0,
                progress=lambda _: None,
            )
        finally:
            tr.close()
        # a finished agent serves the same results again: the raw JSON, before any model
        raw = await web.request(agent.address, "GET", "/results", agent_factory.token)
        status = await web.request(agent.address, "GET", "/status", agent_factory.token)
        return out, results, raw, status

    out, results, raw, status = asyncio.run(go())
    assert raw["status"] == "completed" and raw["buffered_at_end"] == 0, raw["failure"]
    assert list(raw) == RESULT_KEYS, "the agent's /results keys (and their order) are the wire format"
    assert (out / "agents" / "agent-0.json").read_text() == json.dumps(raw) + "\n"
    assert results == [raw]
    assert any(m["event"] == "flush_start" and "at" in m for m in raw["markers"])
    assert list(status) == [*api.Status.model_fields], "a loaded agent's status has every field"
    assert status["state"] == "done"


def _status(state: str = "loaded", **extra: Any) -> dict[str, Any]:
    return {"state": state, "error": None, "t0": None, "phase": None, "now": time.time(), **extra}


def _results() -> dict[str, Any]:
    now = round(time.time(), 3)
    return {
        "run_id": "bad-answers",
        "host": "fake",
        "agent_index": 0,
        "agent_count": 1,
        "status": "completed",
        "failure": None,
        "started": now,
        "finished": now,
        "devices": 1,
        "gateway": "127.0.0.1:9",
        "protocol": "ibp1",
        "counters": {"generated": 1, "acked": 1},
        "buffered_at_end": 0,
        "max_tick_lag_ms": 0.5,
        "markers": [{"event": "run_start", "ts": now}],
        "samples": [{"t": now, "generated": 1, "lag_ms": 0.5}],
        "expected": [["sim-000001", 0, 1, -1, -1, []]],
        "t0": now,
        "start_skew_ms": 0.1,
        "clock_offset_ms": None,
        "clock_source": "no chronyc",
        "controller_offset_ms": 0.0,
    }


class FakeAgent:
    """An agent on a real aiohttp server (the agent's own middleware: token, size) whose answers the
    test picks; counts the aborts it gets."""

    def __init__(self, answers: dict[str, Any], statuses_before_bad: int | None = None) -> None:
        self.answers = answers
        self.statuses = 0
        self.statuses_before_bad = statuses_before_bad
        self.aborts = 0
        self.runner: aiohttp_web.AppRunner | None = None
        self.address = ""

    async def start(self) -> None:
        async def status(_: aiohttp_web.Request) -> aiohttp_web.Response:
            self.statuses += 1
            good = self.statuses_before_bad is None or self.statuses <= self.statuses_before_bad
            return aiohttp_web.json_response(_status("running") if good else self.answers["/status"])

        async def fixed(request: aiohttp_web.Request) -> aiohttp_web.Response:
            if request.path == "/abort":
                self.aborts += 1
            return aiohttp_web.json_response(self.answers.get(request.path, _status()))

        app = web.app(TOKEN)
        app.add_routes(
            [
                aiohttp_web.get("/status", status),
                aiohttp_web.post("/scenario", fixed),
                aiohttp_web.post("/arm", fixed),
                aiohttp_web.post("/abort", fixed),
                aiohttp_web.get("/results", fixed),
            ]
        )
        self.runner, port = await web.start(app, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def _run_against(fake: FakeAgent, reports: Path) -> None:
    await fake.start()
    try:
        await controller.run(
            [fake.address],
            TOKEN,
            parse(SCENARIO),
            SCENARIO,
            "127.0.0.1:9",
            "bad-answers",
            reports,
            lead_s=0.5,
            progress=lambda _: None,
        )
    finally:
        await fake.stop()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_status("running", now="soon"), "now: Input should be a valid number"),
        (_status("sleeping"), "state: Input should be 'idle', 'loaded'"),
        ({"state": "running"}, "now: Field required"),
        ("<html>proxy error</html>", "body: Input should be a valid dictionary"),
    ],
)
def test_malformed_status_names_agent_and_field(body: Any, field: str) -> None:
    fake = FakeAgent({"/status": body}, statuses_before_bad=0)

    async def go() -> None:
        await fake.start()
        try:
            await controller.measure_clock(fake.address, TOKEN)
        finally:
            await fake.stop()

    with pytest.raises(ControllerError) as err:
        asyncio.run(go())
    message = str(err.value)
    assert message.startswith(f"agent {fake.address}: malformed answer to GET /status (Status): ")
    assert field in message, message


def test_malformed_status_while_running_stops_and_aborts(tmp_path: Path) -> None:
    """The 5 clock samples are good; the first poll after arming answers a counter that is no number."""
    fake = FakeAgent({"/status": _status("running", generated="lots")}, statuses_before_bad=5)
    with pytest.raises(
        ControllerError, match=rf"agent {fake.address}.*generated: Input should be a valid integer"
    ):
        asyncio.run(_run_against(fake, tmp_path))
    assert fake.aborts == 1, "an agent answering nonsense mid-run is aborted like a failed one"


def test_malformed_load_answer_names_the_request(tmp_path: Path) -> None:
    fake = FakeAgent({"/scenario": {"state": "loaded"}})
    with pytest.raises(ControllerError) as err:
        asyncio.run(_run_against(fake, tmp_path))
    assert f"agent {fake.address}: malformed answer to POST /scenario (Status): now: Field required" == str(
        err.value
    )


def test_malformed_results_name_agent_and_fields_and_write_nothing(tmp_path: Path) -> None:
    bad = _results()
    bad["counters"]["acked"] = "many"
    del bad["expected"]
    bad["markers"].append({"ts": 1.0})
    fake = FakeAgent({"/results": bad, "/status": _status("done")}, statuses_before_bad=5)
    with pytest.raises(ControllerError) as err:
        asyncio.run(_run_against(fake, tmp_path))
    message = str(err.value)
    assert message.startswith(f"agent {fake.address}: malformed answer to GET /results (AgentResults): ")
    for field in ("counters.acked: Input should be a valid integer", "markers.1.event: Field required"):
        assert field in message, message
    assert "expected: Field required" in message, message
    assert not list(tmp_path.rglob("agent-*.json")), "no bundle from results that do not parse"


def test_results_model_keeps_numbers_and_unknown_keys() -> None:
    """What goes through the model comes out as it came in: ints stay ints in the samples, a marker's
    own keys and a key a newer agent adds are kept, an unset gateway_refusals stays absent."""
    body = _results()
    body["markers"].append({"event": "agent_restart", "ts": 2.5, "down_s": 1.25, "restored_buffered": 7})
    body["future_key"] = {"x": 1}
    wire = json.loads(json.dumps(body))
    assert json.dumps(api.AgentResults.model_validate(wire).wire()) == json.dumps(body)
    with_refusals = {**copy.deepcopy(body), "gateway_refusals": {"oversized": 3}}
    assert api.AgentResults.model_validate(with_refusals).gateway_refusals == {"oversized": 3}


@pytest.mark.parametrize(
    ("gateway", "error"),
    [
        ("10.0.0.5", "'10.0.0.5': give host:port"),
        ("10.0.0.5:5000,10.0.0.6", "'10.0.0.6': give host:port"),
        ("10.0.0.5:99999", "port 1..65535"),
        ("10.0.0.5:5000,10.0.0.5:5000", "the same gateway twice"),
    ],
)
def test_a_load_request_names_the_gateway_address_that_is_wrong(gateway: str, error: str) -> None:
    body = {"scenario": "x", "run_id": "r", "agent_index": 0, "agent_count": 1, "gateway": gateway}
    with pytest.raises(ValidationError, match=error):
        api.LoadRequest.model_validate(body)
    ok = api.LoadRequest.model_validate({**body, "gateway": "10.0.0.5:5000, 10.0.0.6:5001"})
    assert api.gateway_addresses(ok.gateway) == [("10.0.0.5", 5000), ("10.0.0.6", 5001)]
