"""Scenario files: YAML -> typed pydantic dataclasses, validated with errors that name the key and its line.

The schema is declared once, here: each field's type, range (``between``) and the cross-key rules
(model validators) are what ``parse`` checks; ``yamlconf`` maps every problem back to its YAML line
(shared with the gateway's config loader). The defaults are the pilot's success criteria (every
buffered reading ingested, peak >= 5,000 msg/s during the flush, latency recovered within 30 s, no
errors). See docs/simulator.md for every key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.dataclasses import dataclass

import yamlconf
from simulator.devices import datagram
from simulator.devices.datagram import DEFAULT_MAX_DATAGRAM_BYTES
from yamlconf import between, fail

PROTOCOLS = ("ibp1", "legacy-bin", "legacy-json")
OVERFLOW = ("drop-oldest", "drop-newest")
PHASE_KINDS = ("normal", "outage", "recovery")
FaultAction = Literal[
    "broker-restart",
    "broker-kill",
    "broker-node-loss",
    "gateway-restart",
    "gateway-host-loss",
    "link-impair",
    "partition",
    "agent-reboot",
    "disk-full",
]
FAULT_ACTIONS = typing.get_args(FaultAction)

# A scenario is written by hand: a value of the wrong type is a mistake, not something to convert
# ("yes" is not a boolean, 2.5 not a device count). Unknown keys are typos.
_STRICT = ConfigDict(extra="forbid")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; one line per problem, each naming the file, line and key."""


@dataclass(config=_STRICT)
class Devices:
    count: Annotated[StrictInt, between(1, 1_000_000)] = 1000
    id_prefix: StrictStr = "sim-"
    buffer_capacity: Annotated[StrictInt, between(1, 10_000_000)] = 3600
    overflow: Literal["drop-oldest", "drop-newest"] = "drop-oldest"

    @model_validator(mode="after")
    def _id_fits(self) -> Self:
        if not self.id_prefix or len(self.id_prefix) + 7 > 16:
            fail("must be 1..9 characters (ids are PREFIX + 7 digits, legacy ids <= 16 bytes)", "id_prefix")
        return self


@dataclass(config=_STRICT)
class ReadingCfg:
    # <= 10/s keeps sequences unique across runs (see simulator/devices/fleet.py)
    rate_hz: Annotated[StrictFloat, between(0.001, 10.0)] = 1.0
    payload_bytes: Annotated[StrictInt, between(16, 1200)] = 64


@dataclass(config=_STRICT)
class Transport:
    protocol: Literal["ibp1", "legacy-bin", "legacy-json"] = "ibp1"
    ack_timeout_ms: Annotated[StrictInt, between(10, 60_000)] = 1000
    backoff_base_ms: Annotated[StrictInt, between(1, 60_000)] = 200
    backoff_cap_ms: Annotated[StrictInt, between(1, 600_000)] = 8000
    sockets: Annotated[StrictInt, between(1, 1024)] = 32
    # A device that keeps sending this long without any answer (ACK or BUSY) fails the run: the gateway
    # refuses its datagrams (e.g. oversized) or is not there, and retrying until max_s proves nothing.
    no_ack_fail_s: Annotated[StrictFloat, between(1, 86_400)] = 60.0

    @model_validator(mode="after")
    def _backoff(self) -> Self:
        if self.backoff_cap_ms < self.backoff_base_ms:
            fail("must be >= transport.backoff_base_ms", "backoff_cap_ms")
        retry_s = (self.ack_timeout_ms + self.backoff_cap_ms) / 1000
        if self.no_ack_fail_s < retry_s:
            fail(
                f"must be >= ack_timeout_ms + backoff_cap_ms ({retry_s:g} s): a device may wait that long "
                "between two sends without anything being wrong",
                "no_ack_fail_s",
            )
        return self


@dataclass(config=_STRICT)
class Flush:
    batch_size: Annotated[StrictInt, between(1, 255)] = 32
    # Bytes per datagram, whatever batch_size says: a batch holds only the readings that fit, as the
    # firmware's sender does (1472 = one Ethernet MTU of UDP payload, docs/protocol.md). The gateway drops
    # datagrams over its own max_datagram_bytes (4096 by default) unanswered, counted as "oversized".
    # 64..65507 is the gateway's own range for its max_datagram_bytes.
    max_datagram_bytes: Annotated[StrictInt, between(64, 65_507)] = DEFAULT_MAX_DATAGRAM_BYTES
    max_datagrams_per_s: Annotated[StrictFloat, between(0.01, 100_000)] = 20.0
    jitter_ms: Annotated[StrictInt, between(0, 600_000)] = 1000


@dataclass(config=_STRICT)
class Phase:
    name: StrictStr
    kind: Literal["normal", "outage", "recovery"]
    duration_s: Annotated[StrictFloat, between(0, 86_400)] = 0.0
    until: Literal["time", "drained"] = "time"
    max_s: Annotated[StrictFloat, between(0.1, 86_400)] = 300.0
    after_drained_s: Annotated[StrictFloat, between(0, 3600)] = 10.0

    @model_validator(mode="after")
    def _ends(self) -> Self:
        if self.until == "drained" and self.kind != "recovery":
            fail("'drained' is only meaningful for a recovery phase", "until")
        if self.until == "time" and self.duration_s <= 0:
            fail("must be > 0 (or set until: drained on a recovery phase)", "duration_s")
        return self


@dataclass(config=_STRICT)
class FaultEvent:
    """One fault injected on the deployed hosts during a distributed run (ansible/burst.yml, docs/faults.md).

    ``at_s`` counts from the flush: the start of the first recovery phase (T0 + the timed phases before it).
    ``target`` is the index of the host in its group (brokers, gateways or agents), or -1 for every agent
    (link-impair only).
    """

    action: FaultAction
    at_s: Annotated[StrictFloat, between(0, 3600)] = 2.0
    name: StrictStr = ""
    target: Annotated[StrictInt, between(-1, 10_000)] = 0
    # broker-restart / broker-kill: the broker stays down this long before it is started again
    down_s: Annotated[StrictFloat, between(0, 3600)] = 10.0
    # gateway-restart: SIGTERM (systemctl restart, a clean drain) or SIGKILL (systemd restarts it)
    signal: Literal["SIGTERM", "SIGKILL"] = "SIGTERM"
    # link-impair and partition: how long the link stays impaired or cut; disk-full: how long it stays full
    duration_s: Annotated[StrictFloat, between(0.1, 3600)] = 15.0
    # disk-full: refuse to fill a filesystem with more free space than this (a shared, large disk)
    max_fill_mb: Annotated[StrictInt, between(1, 1_048_576)] = 1024
    # link-impair (tc netem where the kernel has it, else the NFQUEUE impairer: simulator/faults/impair/)
    loss_percent: Annotated[StrictFloat, between(0, 100)] = 0.0
    delay_ms: Annotated[StrictFloat, between(0, 60_000)] = 0.0
    jitter_ms: Annotated[StrictFloat, between(0, 60_000)] = 0.0
    reorder_percent: Annotated[StrictFloat, between(0, 100)] = 0.0

    @property
    def label(self) -> str:
        return self.name or (
            f"{self.action}-{self.signal.lower()}" if self.action == "gateway-restart" else self.action
        )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.target < 0 and self.action != "link-impair":
            fail("-1 (every agent) is only for link-impair; give a host index (0 = first)", "target")
        if self.action == "link-impair" and not (self.loss_percent or self.delay_ms or self.reorder_percent):
            fail("link-impair needs at least one of loss_percent, delay_ms, reorder_percent")
        if self.jitter_ms > self.delay_ms:
            fail("must be <= delay_ms", "jitter_ms")
        if self.reorder_percent and not self.delay_ms:
            fail("reordering needs a delay_ms (the reordered share skips the delay)", "reorder_percent")
        return self


@dataclass(config=_STRICT)
class Faults:
    # In-process faults of the simulator itself: datagrams and answers it pretends the network lost.
    loss_percent: Annotated[StrictFloat, between(0, 100)] = 0.0
    ack_loss_percent: Annotated[StrictFloat, between(0, 100)] = 0.0
    # Host-level faults during the flush, injected by ansible/burst.yml on the deployed hosts.
    events: list[FaultEvent] = field(default_factory=list)
    # A fault the run must not survive (disk-full): the run is expected to fail, and its failure to
    # contain this text (scripts/fault-matrix.sh checks it; the matrix shows "failed as expected").
    expect_failure: StrictStr = ""

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        labels: set[str] = set()
        for i, ev in enumerate(self.events):
            if ev.label in labels:
                fail(f"two faults are called {ev.label!r}; give each a distinct name", f"events.{i}.name")
            labels.add(ev.label)
            if ev.action == "disk-full" and not self.expect_failure:
                fail(
                    "a disk-full fault fails the run on purpose (its agent cannot journal readings): say "
                    "what the failure must contain, e.g. 'is full'",
                    "expect_failure",
                )
        return self


@dataclass(config=_STRICT)
class Slos:
    all_delivered: StrictBool = True
    min_peak_rate: Annotated[StrictFloat, between(0, None)] = 5000.0
    recovery_within_s: Annotated[StrictFloat, between(0, None)] = 30.0
    # false: do not judge latency recovery (fault scenarios throttle the flush so a fault can hit it,
    # and the throttle keeps latency above the pre-outage baseline for good)
    check_recovery: StrictBool = True
    max_errors: Annotated[StrictInt, between(0, None)] = 0
    # Distributed runs (ansible/burst.yml): refuse to start when an agent's clock is further off.
    max_clock_skew_ms: Annotated[StrictFloat, between(0, None)] = 50.0


@dataclass(config=_STRICT)
class Scenario:
    name: StrictStr = "unnamed"
    description: StrictStr = ""
    devices: Devices = field(default_factory=Devices)
    reading: ReadingCfg = field(default_factory=ReadingCfg)
    transport: Transport = field(default_factory=Transport)
    flush: Flush = field(default_factory=Flush)
    phases: list[Phase] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    slos: Slos = field(default_factory=Slos)
    final_drain_s: Annotated[StrictFloat, between(0, 3600)] = 60.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def planned_s(self) -> float:
        return sum(p.max_s if p.until == "drained" else p.duration_s for p in self.phases)

    @model_validator(mode="after")
    def _runnable(self) -> Self:
        _check_datagram_fits(self)
        if not self.phases:
            fail(
                "at least one phase is needed (e.g. normal 30 s, outage 60 s, recovery until drained)",
                "phases",
            )
        names: set[str] = set()
        for i, ph in enumerate(self.phases):
            if ph.name in names:
                fail(f"phase name {ph.name!r} is used twice", f"phases.{i}.name")
            names.add(ph.name)
        if self.faults.events and flush_offset_s(self) is None:
            fail(
                "faults run during the flush: the scenario needs a recovery phase after timed phases",
                "faults.events",
            )
        return self


def _check_datagram_fits(scn: Scenario) -> None:
    """One reading must fit in flush.max_datagram_bytes, or every device would retry one datagram forever."""
    if scn.transport.protocol != "ibp1":
        return  # legacy formats carry one reading per datagram, unacknowledged: nothing to cap
    id_len = len(scn.devices.id_prefix.encode()) + datagram.id_width(scn.devices.count)
    run_id_len = datagram.run_id_len(scn.name)
    one = datagram.one_reading_bytes(id_len, scn.reading.payload_bytes, run_id_len)
    cap = scn.flush.max_datagram_bytes
    if one > cap:
        fail(
            f"a datagram of one reading needs {one} bytes (payload "
            f"{datagram.payload_len(scn.reading.payload_bytes, run_id_len)} bytes with a {run_id_len}-character "
            f"run id, device id of {id_len} bytes) but flush.max_datagram_bytes is {cap}: raise "
            "flush.max_datagram_bytes (and the gateway's max_datagram_bytes) or lower reading.payload_bytes",
            "flush.max_datagram_bytes",
            "reading.payload_bytes",
        )


_ADAPTER = TypeAdapter(Scenario)


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """Validate scenario YAML; every problem is one line ``SOURCE:LINE: key 'PATH': what to fix``."""
    try:
        data, lines = yamlconf.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ScenarioError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        return _ADAPTER.validate_python({} if data is None else data)
    except ValidationError as exc:
        found = yamlconf.problems(exc, Scenario, lines)
        raise ScenarioError(
            "\n".join(
                f"{source}:{p.line}: key '{p.path}': {p.message}"
                if p.line
                else f"{source}: key '{p.path}': {p.message}"
                for p in found
            )
        ) from None


def load(path: str | Path) -> tuple[Scenario, str]:
    """Load and validate a scenario file; returns the scenario and the file's text (kept in the bundle)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    return parse(text, str(path)), text


def readings_per_datagram(scn: Scenario) -> int:
    """Readings in a full IBP/1 datagram of this scenario: flush.batch_size, or fewer when the bytes cap it."""
    id_len = len(scn.devices.id_prefix.encode()) + datagram.id_width(scn.devices.count)
    return datagram.readings_per_datagram(
        scn.flush.batch_size,
        scn.flush.max_datagram_bytes,
        id_len,
        scn.reading.payload_bytes,
        datagram.run_id_len(scn.name),
    )


def no_ack_limit_s(scn: Scenario) -> float:
    """How long a device may send without an answer before the run fails (transport.no_ack_fail_s).

    A scenario's host faults silence the gateway on purpose (a partition, a broker or gateway restart):
    the longest of them, plus a minute for the restarted service to come back, is added to the limit.
    """
    longest = 0.0
    for ev in scn.faults.events:
        if ev.action in ("broker-restart", "broker-kill"):
            longest = max(longest, ev.down_s + 60.0)
        elif ev.action in ("partition", "link-impair", "disk-full"):
            longest = max(longest, ev.duration_s + 60.0)
        else:
            longest = max(longest, 60.0)
    return scn.transport.no_ack_fail_s + longest


def flush_offset_s(scn: Scenario) -> float | None:
    """Seconds from T0 to the flush (the first recovery phase), when every phase before it is timed."""
    offset = 0.0
    for ph in scn.phases:
        if ph.kind == "recovery":
            return offset
        if ph.until != "time":
            return None
        offset += ph.duration_s
    return None


def pilot(devices: int, duration_s: float) -> Scenario:
    """The interactive pilot CLI: one long normal phase; `offline` / `online` are typed by a person."""
    return Scenario(
        name="interactive",
        devices=Devices(count=devices),
        phases=[Phase(name="interactive", kind="normal", duration_s=duration_s)],
    )
