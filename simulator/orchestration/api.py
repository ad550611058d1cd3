"""The agent's control API as declared models, shared by the agent (which validates what it is sent) and
the controller (which builds what it sends), so both sides agree on one schema instead of two sets of
dict keys. Only pydantic (no aiokafka, hdrhistogram, matplotlib): agent hosts import this.

    GET  /status     -> Status
    POST /scenario   LoadRequest -> Status
    POST /arm        ArmRequest  -> Status
    POST /abort      (no body)   -> Status
    GET  /results    -> the run's results (still a dict: the audit reads them, see simulator/audit)
    any error        -> ErrorBody
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, ValidationError


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
    gateway: str  # host:port


class ArmRequest(BaseModel):
    """POST /arm: start at wall-clock t0 (unix seconds); the controller's measured offset to this host."""

    model_config = ConfigDict(extra="ignore")

    t0: float
    controller_offset_ms: float | None = None


class Status(BaseModel):
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
