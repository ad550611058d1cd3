"""Agent mode: one simulator process per host, driven over a small HTTP control API with a shared token.

    GET  /status     state (idle|loaded|armed|running|done|aborted|error), progress counters, clock offset
    POST /scenario   {"scenario": "<yaml text>", "run_id", "agent_index", "agent_count", "gateway": "host:port[,host:port]"}
    POST /arm        {"t0": <unix seconds>}: start the run at that wall-clock time
    POST /abort      stop a loaded, armed or running run
    GET  /results    the run's results (counters, samples, phase markers, expected sequences, skew, offset)

The bodies are the pydantic models of simulator/orchestration/api.py (shared with the controller); the
transport, with the token and size checks, is aiohttp (simulator/orchestration/web.py).

Between hosts the API is TLS only, normally mutual TLS (``--tls-cert``, ``--tls-key``, ``--tls-client-ca``:
the controller must present a certificate from the inventory's CA, simulator/orchestration/tls.py); plain HTTP is
refused except on loopback. ``/metrics`` (Prometheus, read-only, no token) then has its own plain port
(``--metrics-listen``), so the TLS port answers only authenticated peers.

The fleet master key never travels over this API: the agent reads it at start (``--master-key-file``,
``--registry`` or ``IBP_MASTER_KEY``).

With a state dir (``--state-dir`` or ``SIM_AGENT_STATE_DIR``; simulator/devices/persist.py) the agent keeps its
run on disk: the load body, t0 and offsets in ``run.json``, the devices' buffers in a journal fsync'd
before any reading is sent, snapshots, and the results once the run ends. Started again after a
reboot or a SIGKILL it picks the run up: an armed run whose t0 is still ahead is armed again, a
running one resumes from the restored devices (marker ``agent_restart``), a finished one serves its
results. SIGTERM then suspends a run instead of aborting it (POST /abort still aborts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
import time
from pathlib import Path
from typing import Any

from aiohttp import web as aiohttp_web
from pydantic import ValidationError

from simulator.devices import persist
from simulator.devices.fleet import Fleet
from simulator.orchestration import agent_metrics, api, web
from simulator.orchestration.clock import chrony_offset_ms
from simulator.orchestration.runner import new_plan, run_phases
from simulator.scenario import Scenario, ScenarioError, parse

log = logging.getLogger("simulator.orchestration.agent")


class Agent:
    def __init__(self, master_key: bytes | None, state_dir: Path | str | None = None) -> None:
        self.master_key = master_key
        self.store = persist.Store(state_dir) if state_dir is not None else None
        self.run_record: dict[str, Any] = {}  # run.json: what a restarted agent needs to go on
        self.state: api.AgentState = api.AgentState.IDLE
        self.error: str | None = None
        self.scenario: Scenario | None = None
        self.load: dict[str, Any] = {}
        self.fleet: Fleet | None = None
        self.task: asyncio.Task | None = None
        self.abort = asyncio.Event()
        self.results: api.AgentResults | None = None
        self.t0: float | None = None
        self.phase: str | None = None
        self.start_skew_ms: float | None = None
        self.clock_offset_ms: float | None = None  # from chrony, when it runs on this host
        self.controller_offset_ms: float | None = None  # measured by the controller before arming

    def status(self) -> api.Status:
        """This agent's Status; the fleet counters only once a scenario is loaded (before that they are
        left unset, so the JSON has no such keys rather than nulls: api.Answer.wire)."""
        fleet: dict[str, Any] = {}
        if self.fleet is not None:
            c = self.fleet.counters
            fleet = {
                "run_id": self.fleet.run_id,
                "devices": len(self.fleet.devices),
                "online": self.fleet.online,
                "generated": c.generated,
                "acked": c.acked,
                "buffered": self.fleet.buffered,
                "retransmits": c.retransmits,
            }
        return api.Status(
            state=self.state,
            error=self.error,
            t0=self.t0,
            phase=self.phase,
            now=time.time(),  # the controller measures this host's clock offset against its own
            **fleet,
        )

    def routes(self) -> list[aiohttp_web.RouteDef]:
        """The control API (module docstring); web.app's middleware has checked the token and size."""

        def answer(result: tuple[int, api.Answer | api.ErrorBody]) -> aiohttp_web.Response:
            status, body = result
            data = body.wire() if isinstance(body, api.Answer) else body.model_dump(mode="json")
            return aiohttp_web.json_response(data, status=status)

        async def status(_: aiohttp_web.Request) -> aiohttp_web.Response:
            return answer((200, self.status()))

        async def load(request: aiohttp_web.Request) -> aiohttp_web.Response:
            return answer(await self._load(await web.read_json(request)))

        async def arm(request: aiohttp_web.Request) -> aiohttp_web.Response:
            return answer(self._arm(await web.read_json(request)))

        async def abort(_: aiohttp_web.Request) -> aiohttp_web.Response:
            self.abort.set()
            if self.state in (api.AgentState.LOADED, api.AgentState.ARMED):
                self.state = api.AgentState.ABORTED
                self._save_run(state="aborted")
            return answer((200, self.status()))

        async def results(_: aiohttp_web.Request) -> aiohttp_web.Response:
            if self.results is None:
                return answer((409, api.ErrorBody(error=f"no results yet (state {self.state})")))
            return answer((200, self.results))

        return [
            aiohttp_web.get("/status", status),
            aiohttp_web.post("/scenario", load),
            aiohttp_web.post("/arm", arm),
            aiohttp_web.post("/abort", abort),
            aiohttp_web.get("/results", results),
        ]

    def _save_run(self, **changes: Any) -> None:
        if self.store is not None:
            self.run_record.update(changes)
            self.store.write_json(persist.RUN, self.run_record)

    def _save_run_best_effort(self, **changes: Any) -> None:
        """Record a failure in run.json if the disk lets us (it may be the full disk that failed the run)."""
        try:
            self._save_run(**changes)
        except OSError as exc:
            log.error("could not record the failure in %s: %s", self.store.dir if self.store else "-", exc)

    async def _load(self, body: Any, fresh: bool = True) -> tuple[int, api.Status | api.ErrorBody]:
        if self.state in api.ACTIVE:
            return 409, api.ErrorBody(error=f"agent is {self.state}; abort first")
        try:
            req = api.LoadRequest.model_validate(body)
        except ValidationError as exc:
            return 400, api.ErrorBody(error=api.describe(exc))
        try:
            scn = parse(req.scenario, f"scenario for run {req.run_id}")
            gateways = api.gateway_addresses(req.gateway)
            if self.fleet is not None:
                self.fleet.close()
            self.fleet = Fleet(
                scn,
                *gateways[0],
                req.run_id,
                self.master_key,
                req.agent_index,
                req.agent_count,
                store=self.store,
                gateways=tuple(gateways),
            )
            await self.fleet.open()
        except (ScenarioError, ValueError, OSError) as exc:
            self.state, self.error = api.AgentState.ERROR, str(exc)
            return 400, api.ErrorBody(error=str(exc))
        self.scenario, self.load = scn, body
        self.state, self.error, self.results, self.t0 = api.AgentState.LOADED, None, None, None
        self.abort = asyncio.Event()
        if self.store is not None and fresh:
            self.store.reset()  # a new run: the previous one's state is gone
            self.run_record = {"load": body}
            self._save_run(state="loaded")
        return 200, self.status()

    def _arm(self, body: Any) -> tuple[int, api.Status | api.ErrorBody]:
        if self.state != api.AgentState.LOADED:
            return 409, api.ErrorBody(error=f"agent is {self.state}; load a scenario first")
        try:
            req = api.ArmRequest.model_validate(body)
        except ValidationError as exc:
            return 400, api.ErrorBody(error=api.describe(exc))
        self.t0 = req.t0
        self.controller_offset_ms = req.controller_offset_ms
        self.state = api.AgentState.ARMED
        self._save_run(state="armed", t0=self.t0, controller_offset_ms=self.controller_offset_ms)
        self.task = asyncio.create_task(self._run(self.t0))
        return 200, self.status()

    async def recover(self) -> None:
        """At start: pick up the run a previous process of this agent left in the state dir."""
        run = self.store.read_json(persist.RUN) if self.store is not None else None
        if not run:
            return
        assert self.store is not None
        self.run_record = run
        state = run.get("state")
        if state in api.FINISHED:
            self.state, self.error, self.load = api.AgentState(state), run.get("error"), run["load"]
            saved = self.store.read_json(persist.RESULTS)
            if saved is not None:  # an error before the run ended left no results
                try:
                    self.results = api.AgentResults.model_validate(saved)
                except ValidationError as exc:
                    self.state = api.AgentState.ERROR
                    self.error = f"cannot serve the results in {self.store.dir}: {api.describe(exc)}"
        else:
            status, _ = await self._load(run["load"], fresh=False)
            if status != 200:
                return
        self.t0 = run.get("t0")
        self.controller_offset_ms = run.get("controller_offset_ms")
        self.start_skew_ms = run.get("start_skew_ms")
        if state not in api.ACTIVE or self.t0 is None:
            return
        assert self.fleet is not None
        try:
            meta = self.fleet.restore() if self.store.has_snapshot() else None
        except (persist.PersistError, ValueError, KeyError, TypeError) as exc:
            self.state, self.error = api.AgentState.ERROR, f"cannot resume from {self.store.dir}: {exc}"
            return
        if meta is None and self.t0 > time.time():
            self.state = api.AgentState.ARMED  # it never started and T0 is still ahead: armed again
            self.task = asyncio.create_task(self._run(self.t0))
            return
        if meta is None:  # T0 passed while the agent was down, before the run started
            plan = new_plan(self.t0)
            self.fleet.last_alive = self.t0
            if self.start_skew_ms is None:
                self.start_skew_ms = round((time.time() - self.t0) * 1000, 3)
        else:
            plan = self.fleet.run_state
        self.state = api.AgentState.RUNNING
        print(
            f"event=resumed run_id={self.fleet.run_id} buffered={self.fleet.buffered} "
            f"torn_tail={bool(meta and meta['torn_tail'])}",
            flush=True,
        )
        self.task = asyncio.create_task(self._run(self.t0, plan))

    def suspend(self) -> None:
        """Stop now, keeping the run on disk for the next start (SIGTERM with a state dir)."""
        if self.task is not None:
            self.task.cancel()

    async def _run(self, t0: float, resume: dict[str, Any] | None = None) -> None:
        assert self.fleet is not None and self.scenario is not None
        offset, source = chrony_offset_ms()
        self.clock_offset_ms = offset
        try:
            if resume is None:
                self.start_skew_ms = None
                delay = t0 - time.time()
                if delay > 0:
                    try:
                        await asyncio.wait_for(self.abort.wait(), delay)
                    except TimeoutError:
                        pass
                if self.abort.is_set():
                    self.state = api.AgentState.ABORTED
                    self._save_run(state="aborted")
                    return
                # fine wait: the last milliseconds without the event loop's timer granularity
                while time.time() < t0:  # noqa: ASYNC110 - spinning on the clock, not on a condition
                    await asyncio.sleep(0.0005)
                self.start_skew_ms = round((time.time() - t0) * 1000, 3)
            skew_ms = self.start_skew_ms
            self.state = api.AgentState.RUNNING
            self._save_run(state="running", start_skew_ms=skew_ms)

            def on_phase(name: str) -> None:
                self.phase = name

            ran = await run_phases(self.fleet, self.scenario, self.abort, on_phase, resume)
            results = api.AgentResults(
                **ran,
                t0=t0,
                start_skew_ms=skew_ms,
                clock_offset_ms=offset,
                clock_source=source,
                controller_offset_ms=self.controller_offset_ms,
            )
            self.results = results
            # a failed run (its devices got no answer from the gateway) is an error: the controller stops
            # every agent and shows why, instead of waiting out the others' max_s
            self.state = {"aborted": api.AgentState.ABORTED, "failed": api.AgentState.ERROR}.get(
                results.status, api.AgentState.DONE
            )
            self.error = results.failure
            if self.store is not None:
                self.store.write_json(persist.RESULTS, results.wire())
                self._save_run(state=self.state, error=self.error)
                self.store.drop_fleet_state()
        except persist.StateDirFull as exc:
            # The run fails loudly (the controller stops every agent and shows this); the state dir keeps
            # every reading journaled before, and is not cleaned up.
            self.state, self.error = api.AgentState.ERROR, str(exc)
            self._save_run_best_effort(state="error", error=self.error)
        except Exception as exc:  # the API must report it, not die
            self.state, self.error = api.AgentState.ERROR, f"{type(exc).__name__}: {exc}"
            self._save_run_best_effort(state="error", error=self.error)
        finally:
            self.fleet.close()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def serve(
    token: str,
    master_key: bytes | None,
    host: str,
    port: int,
    state_dir: Path | str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    metrics: tuple[str, int] | None = None,
) -> None:
    """Serve the control API (over TLS with ``ssl_context``) and, with ``metrics``, the read-only
    ``/metrics`` on its own plain-HTTP port for Prometheus, which then is not on the TLS port.

    Without TLS the control API may listen only on loopback (tests, one-machine runs): between hosts
    the token would travel in clear text.
    """
    if ssl_context is None and not _loopback(host):
        raise SystemExit(
            f"refusing to serve the control API in plain HTTP on {host}: give --tls-cert/--tls-key "
            "(and --tls-client-ca), or listen on 127.0.0.1"
        )
    agent = Agent(master_key, state_dir)
    await agent.recover()
    exposition = {"/metrics": lambda: agent_metrics.exposition(agent)}
    control = web.app(token, open_get=exposition if metrics is None else None)
    control.add_routes(agent.routes())
    runner, real_port = await web.start(control, host, port, ssl_context=ssl_context)
    runners = [runner]
    if metrics is not None:
        mrunner, mport = await web.start(web.app(None, open_get=exposition), metrics[0], metrics[1])
        runners.append(mrunner)
        print(f"event=metrics_listening metrics_port={mport}", flush=True)
    print(f"event=listening http_port={real_port} tls={ssl_context is not None}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if agent.store is not None and agent.state in api.ACTIVE:
        agent.suspend()  # the run stays on disk: the next start resumes it
    else:
        agent.abort.set()
    if agent.task is not None:
        await asyncio.wait([agent.task], timeout=10)
    if agent.store is not None:
        agent.store.close()
    for r in runners:
        await r.cleanup()
    print("event=stopped", flush=True)
