"""The agent's control API as declared models, shared by the agent (which validates what it is sent) and
the controller (which builds what it sends), so both sides agree on one schema instead of two sets of
dict keys. Only pydantic (no aiokafka, hdrhistogram, matplotlib): agent hosts import this.

    GET  /status     -> Status
    POST /scenario   LoadRequest -> Status
    POST /arm        ArmRequest  -> Status
    POST /abort      (no body)   -> Status
    GET  /results    -> AgentResults
    any error        -> ErrorBody

Each answer goes on the wire as ``wire()``: the keys that were set, in the models' field order, which
is the order the agent wrote its dicts in before these models, so the JSON (and what the controller
writes into reports/<run-id>/agents/) keeps its keys, order and values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class AgentState(StrEnum):
    """Where an agent's run is. A StrEnum so the JSON and run.json keep the plain words they had."""

    IDLE = "idle"
    LOADED = "loaded"
    ARMED = "armed"
    RUNNING = "running"
    DONE = "done"
    ABORTED = "aborted"
    ERROR = "error"


#: States a run can be picked up from after a restart, and those it is over in.
ACTIVE = frozenset({AgentState.ARMED, AgentState.RUNNING})
FINISHED = frozenset({AgentState.DONE, AgentState.ABORTED, AgentState.ERROR})


class LoadRequest(BaseModel):
    """POST /scenario: the scenario text and this agent's share of the fleet."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)  # run_id 7 was accepted before

    scenario: str
    run_id: str
    agent_index: int
    agent_count: int
    # host:port, or host:port,host:port,... for a run with several gateways (device i talks to the
    # (i mod n)-th of them: simulator/devices/fleet.py)
    gateway: str

    @field_validator("gateway")
    @classmethod
    def _addresses(cls, value: str) -> str:
        gateway_addresses(value)
        return value


def gateway_addresses(value: str) -> list[tuple[str, int]]:
    """``host:port[,host:port...]`` as (host, port) pairs; a clear error naming the part that is wrong."""
    out = []
    for part in value.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"gateway {part.strip()!r}: give host:port (port 1..65535), comma-separated for several"
            )
        out.append((host, int(port)))
    if len(set(out)) != len(out):
        raise ValueError(f"gateway {value!r}: the same gateway twice")
    return out


class ArmRequest(BaseModel):
    """POST /arm: start at wall-clock t0 (unix seconds); the controller's measured offset to this host."""

    model_config = ConfigDict(extra="ignore")

    t0: float
    controller_offset_ms: float | None = None


class Answer(BaseModel):
    """An answer body the agent serves and the controller parses."""

    def wire(self) -> dict[str, Any]:
        """The JSON body: only the fields that were set (a Status before any scenario has no fleet
        counters at all rather than nulls; results without ``gateway_refusals`` have no such key), so
        the answers keep the keys they had when they were plain dicts."""
        return self.model_dump(mode="json", exclude_unset=True)


class Status(Answer):
    """GET /status and the answer to every state change. Fleet counters only once a scenario is loaded."""

    state: AgentState
    error: str | None = None
    t0: float | None = None
    phase: str | None = None
    now: float
    run_id: str | None = None
    devices: int | None = None
    online: int | None = None
    generated: int | None = None
    acked: int | None = None
    buffered: int | None = None
    retransmits: int | None = None


class Marker(BaseModel):
    """A timed event of the run (``run_start``, ``outage_start``, ``flush_start``, ``agent_restart``...).
    The audit finds the phases by ``event`` and ``ts`` (``at``, the exact phase edge, when there is one);
    the other keys vary by event and pass through as they are."""

    model_config = ConfigDict(extra="allow")

    event: str
    ts: float


#: One device's expectation as the fleet writes it: [id, first_seq, next_seq, outage_first, outage_end,
#: drops as [first, last] ranges] (simulator/audit/expectations.py reads it field by field).
ExpectedRow = tuple[str, int, int, int, int, list[tuple[int, int]]]


class AgentResults(Answer):
    """GET /results: one agent's finished run, what the controller writes to agents/agent-<index>.json
    and the audit accounts from. Fields in the order simulator/orchestration/runner.py ``results`` and
    the agent write them (that order is the files' byte layout).

    ``counters`` and ``samples`` stay mappings of numbers: their names are simulator/devices/fleet.py's
    Counters and Sample, which this module does not import (agent hosts and the controller share it
    without the fleet) and should not repeat; ``int | float`` keeps each number the type it was sent as.
    Keys not declared here are kept (after the declared ones): what an agent reports reaches the bundle.
    """

    model_config = ConfigDict(extra="allow")

    run_id: str
    host: str
    agent_index: int
    agent_count: int
    status: Literal["completed", "aborted", "failed"]
    failure: str | None
    started: float
    finished: float
    devices: int
    gateway: str
    protocol: str
    # how the fleet's datagrams left (Fleet.send_path): segmented, sendmmsg, transport; None from older agents
    send_path: str | None = None
    counters: dict[str, int]
    buffered_at_end: int
    max_tick_lag_ms: float
    markers: list[Marker]
    samples: list[dict[str, int | float]]
    expected: list[ExpectedRow]
    # added by the agent once the run is over
    t0: float
    start_skew_ms: float | None
    clock_offset_ms: float | None
    clock_source: str
    controller_offset_ms: float | None
    # a run that read the gateway's /metrics (simulator/orchestration/session.py run_local): refusals by reason
    gateway_refusals: dict[str, int] | None = None


class ErrorBody(BaseModel):
    """Every non-200 answer: one sentence naming what to fix."""

    error: str


def describe(exc: ValidationError) -> str:
    """A validation failure as one line naming each bad field, for a 400 answer."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
