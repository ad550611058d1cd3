"""Scenario files: YAML -> typed dataclasses, validated with errors that name the key and its line.

The defaults are the pilot's success criteria (every buffered reading ingested, peak >= 5,000 msg/s during
the flush, latency recovered within 30 s, no errors). See docs/simulator.md for every key.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from simulator.devices import datagram
from simulator.devices.datagram import DEFAULT_MAX_DATAGRAM_BYTES

PROTOCOLS = ("ibp1", "legacy-bin", "legacy-json")
OVERFLOW = ("drop-oldest", "drop-newest")
PHASE_KINDS = ("normal", "outage", "recovery")
FaultAction = Literal[
    "broker-restart",
    "broker-kill",
    "gateway-restart",
    "link-impair",
    "partition",
    "agent-reboot",
    "disk-full",
]
FAULT_ACTIONS = typing.get_args(FaultAction)


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file, line and key."""


@dataclass
class Devices:
    count: int = 1000
    id_prefix: str = "sim-"
    buffer_capacity: int = 3600
    overflow: Literal["drop-oldest", "drop-newest"] = "drop-oldest"


@dataclass
class ReadingCfg:
    rate_hz: float = 1.0
    payload_bytes: int = 64


@dataclass
class Transport:
    protocol: Literal["ibp1", "legacy-bin", "legacy-json"] = "ibp1"
    ack_timeout_ms: int = 1000
    backoff_base_ms: int = 200
    backoff_cap_ms: int = 8000
    sockets: int = 32
    # A device that keeps sending this long without any answer (ACK or BUSY) fails the run: the gateway
    # refuses its datagrams (e.g. oversized) or is not there, and retrying until max_s proves nothing.
    no_ack_fail_s: float = 60.0


@dataclass
class Flush:
    batch_size: int = 32
    # Bytes per datagram, whatever batch_size says: a batch holds only the readings that fit, as the
    # firmware's sender does (1472 = one Ethernet MTU of UDP payload, docs/protocol.md). The gateway drops
    # datagrams over its own max_datagram_bytes (4096 by default) unanswered, counted as "oversized".
    max_datagram_bytes: int = DEFAULT_MAX_DATAGRAM_BYTES
    max_datagrams_per_s: float = 20.0
    jitter_ms: int = 1000


@dataclass
class Phase:
    name: str
    kind: Literal["normal", "outage", "recovery"]
    duration_s: float = 0.0
    until: Literal["time", "drained"] = "time"
    max_s: float = 300.0
    after_drained_s: float = 10.0


@dataclass
class FaultEvent:
    """One fault injected on the deployed hosts during a distributed run (ansible/burst.yml, docs/faults.md).

    ``at_s`` counts from the flush: the start of the first recovery phase (T0 + the timed phases before it).
    ``target`` is the index of the host in its group (brokers, gateways or agents), or -1 for every agent
    (link-impair only).
    """

    action: FaultAction
    at_s: float = 2.0
    name: str = ""
    target: int = 0
    # broker-restart / broker-kill: the broker stays down this long before it is started again
    down_s: float = 10.0
    # gateway-restart: SIGTERM (systemctl restart, a clean drain) or SIGKILL (systemd restarts it)
    signal: Literal["SIGTERM", "SIGKILL"] = "SIGTERM"
    # link-impair and partition: how long the link stays impaired or cut; disk-full: how long it stays full
    duration_s: float = 15.0
    # disk-full: refuse to fill a filesystem with more free space than this (a shared, large disk)
    max_fill_mb: int = 1024
    # link-impair (tc netem where the kernel has it, else the NFQUEUE impairer: simulator/faults/impair.py)
    loss_percent: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder_percent: float = 0.0

    @property
    def label(self) -> str:
        return self.name or (
            f"{self.action}-{self.signal.lower()}" if self.action == "gateway-restart" else self.action
        )


@dataclass
class Faults:
    # In-process faults of the simulator itself: datagrams and answers it pretends the network lost.
    loss_percent: float = 0.0
    ack_loss_percent: float = 0.0
    # Host-level faults during the flush, injected by ansible/burst.yml on the deployed hosts.
    events: list[FaultEvent] = field(default_factory=list)
    # A fault the run must not survive (disk-full): the run is expected to fail, and its failure to
    # contain this text (scripts/fault-matrix.sh checks it; the matrix shows "failed as expected").
    expect_failure: str = ""


@dataclass
class Slos:
    all_delivered: bool = True
    min_peak_rate: float = 5000.0
    recovery_within_s: float = 30.0
    # false: do not judge latency recovery (fault scenarios throttle the flush so a fault can hit it,
    # and the throttle keeps latency above the pre-outage baseline for good)
    check_recovery: bool = True
    max_errors: int = 0
    # Distributed runs (ansible/burst.yml): refuse to start when an agent's clock is further off.
    max_clock_skew_ms: float = 50.0


@dataclass
class Scenario:
    name: str = "unnamed"
    description: str = ""
    devices: Devices = field(default_factory=Devices)
    reading: ReadingCfg = field(default_factory=ReadingCfg)
    transport: Transport = field(default_factory=Transport)
    flush: Flush = field(default_factory=Flush)
    phases: list[Phase] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    slos: Slos = field(default_factory=Slos)
    final_drain_s: float = 60.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def planned_s(self) -> float:
        return sum(p.max_s if p.until == "drained" else p.duration_s for p in self.phases)


# Per-key ranges: (min, max) inclusive; None means open.
_RANGES: dict[str, tuple[float | None, float | None]] = {
    "devices.count": (1, 1_000_000),
    "devices.buffer_capacity": (1, 10_000_000),
    "reading.rate_hz": (0.001, 10.0),  # <= 10/s keeps sequences unique across runs (see fleet.py)
    "reading.payload_bytes": (16, 1200),
    "transport.ack_timeout_ms": (10, 60_000),
    "transport.backoff_base_ms": (1, 60_000),
    "transport.backoff_cap_ms": (1, 600_000),
    "transport.sockets": (1, 1024),
    "transport.no_ack_fail_s": (1, 86_400),
    "flush.batch_size": (1, 255),
    "flush.max_datagram_bytes": (64, 65_507),  # the gateway's own range for its max_datagram_bytes
    "flush.max_datagrams_per_s": (0.01, 100_000),
    "flush.jitter_ms": (0, 600_000),
    "phases.duration_s": (0, 86_400),
    "phases.max_s": (0.1, 86_400),
    "phases.after_drained_s": (0, 3600),
    "faults.loss_percent": (0, 100),
    "faults.ack_loss_percent": (0, 100),
    "faults.events.at_s": (0, 3600),
    "faults.events.target": (-1, 10_000),
    "faults.events.down_s": (0, 3600),
    "faults.events.duration_s": (0.1, 3600),
    "faults.events.loss_percent": (0, 100),
    "faults.events.delay_ms": (0, 60_000),
    "faults.events.jitter_ms": (0, 60_000),
    "faults.events.reorder_percent": (0, 100),
    "faults.events.max_fill_mb": (1, 1_048_576),
    "slos.min_peak_rate": (0, None),
    "slos.recovery_within_s": (0, None),
    "slos.max_errors": (0, None),
    "slos.max_clock_skew_ms": (0, None),
    "final_drain_s": (0, 3600),
}


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = f"{path}.{k.value}" if path else str(k.value)
            out[sub] = k.start_mark.line + 1
            _lines(v, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = f"{path}[{i}]"
            out[sub] = item.start_mark.line + 1
            _lines(item, sub, out)


class _Ctx:
    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines

    def fail(self, path: str, msg: str) -> typing.NoReturn:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            line = self.lines.get(probe)
        where = f"{self.source}:{line}" if line else self.source
        raise ScenarioError(f"{where}: key '{path}': {msg}")


def _range_key(path: str) -> str:
    import re

    return re.sub(r"\[\d+\]", "", path)


def _convert(ctx: _Ctx, path: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(ctx, path, tp, value)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            ctx.fail(path, f"must be a list, got {type(value).__name__}")
        return [_convert(ctx, f"{path}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            ctx.fail(path, f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            ctx.fail(path, f"must be true or false, got {value!r}")
        return value
    if tp is int or tp is float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (tp is int and isinstance(value, float))
        ):
            ctx.fail(path, f"must be {'an integer' if tp is int else 'a number'}, got {value!r}")
        lo, hi = _RANGES.get(_range_key(path), (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            ctx.fail(path, f"must be in {lo}..{hi if hi is not None else 'inf'}, got {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.fail(path, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {tp!r}")  # programming error, not user input


def _build(ctx: _Ctx, path: str, cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        ctx.fail(path or "(top level)", f"must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in fields:
            ctx.fail(sub, f"unknown key; allowed here: {', '.join(fields)}")
        kwargs[key] = _convert(ctx, sub, hints[key], value)
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            ctx.fail(path or "(top level)", f"missing required key '{name}'")
    return cls(**kwargs)


def _check(ctx: _Ctx, scn: Scenario) -> None:
    if not scn.devices.id_prefix or len(scn.devices.id_prefix) + 7 > 16:
        ctx.fail(
            "devices.id_prefix", "must be 1..9 characters (ids are PREFIX + 7 digits, legacy ids <= 16 bytes)"
        )
    if scn.transport.backoff_cap_ms < scn.transport.backoff_base_ms:
        ctx.fail("transport.backoff_cap_ms", "must be >= transport.backoff_base_ms")
    retry_s = (scn.transport.ack_timeout_ms + scn.transport.backoff_cap_ms) / 1000
    if scn.transport.no_ack_fail_s < retry_s:
        ctx.fail(
            "transport.no_ack_fail_s",
            f"must be >= ack_timeout_ms + backoff_cap_ms ({retry_s:g} s): a device may wait that long between "
            "two sends without anything being wrong",
        )
    _check_datagram_fits(ctx, scn)
    if not scn.phases:
        ctx.fail(
            "phases", "at least one phase is needed (e.g. normal 30 s, outage 60 s, recovery until drained)"
        )
    names = set()
    for i, ph in enumerate(scn.phases):
        p = f"phases[{i}]"
        if ph.name in names:
            ctx.fail(f"{p}.name", f"phase name {ph.name!r} is used twice")
        names.add(ph.name)
        if ph.until == "drained" and ph.kind != "recovery":
            ctx.fail(f"{p}.until", "'drained' is only meaningful for a recovery phase")
        if ph.until == "time" and ph.duration_s <= 0:
            ctx.fail(f"{p}.duration_s", "must be > 0 (or set until: drained on a recovery phase)")
    _check_faults(ctx, scn)


def _check_datagram_fits(ctx: _Ctx, scn: Scenario) -> None:
    """One reading must fit in flush.max_datagram_bytes, or every device would retry one datagram forever."""
    if scn.transport.protocol != "ibp1":
        return  # legacy formats carry one reading per datagram, unacknowledged: nothing to cap
    id_len = len(scn.devices.id_prefix.encode()) + datagram.id_width(scn.devices.count)
    run_id_len = datagram.run_id_len(scn.name)
    one = datagram.one_reading_bytes(id_len, scn.reading.payload_bytes, run_id_len)
    cap = scn.flush.max_datagram_bytes
    if one > cap:
        key = (
            "flush.max_datagram_bytes" if "flush.max_datagram_bytes" in ctx.lines else "reading.payload_bytes"
        )
        ctx.fail(
            key,
            f"a datagram of one reading needs {one} bytes (payload "
            f"{datagram.payload_len(scn.reading.payload_bytes, run_id_len)} bytes with a {run_id_len}-character "
            f"run id, device id of {id_len} bytes) but flush.max_datagram_bytes is {cap}: raise "
            "flush.max_datagram_bytes (and the gateway's max_datagram_bytes) or lower reading.payload_bytes",
        )


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


def _check_faults(ctx: _Ctx, scn: Scenario) -> None:
    events = scn.faults.events
    if events and flush_offset_s(scn) is None:
        ctx.fail(
            "faults.events",
            "faults run during the flush: the scenario needs a recovery phase after timed phases",
        )
    labels = set()
    for i, ev in enumerate(events):
        p = f"faults.events[{i}]"
        if ev.label in labels:
            ctx.fail(f"{p}.name", f"two faults are called {ev.label!r}; give each a distinct name")
        labels.add(ev.label)
        if ev.target < 0 and ev.action != "link-impair":
            ctx.fail(f"{p}.target", "-1 (every agent) is only for link-impair; give a host index (0 = first)")
        if ev.action == "link-impair" and not (ev.loss_percent or ev.delay_ms or ev.reorder_percent):
            ctx.fail(p, "link-impair needs at least one of loss_percent, delay_ms, reorder_percent")
        if ev.jitter_ms > ev.delay_ms:
            ctx.fail(f"{p}.jitter_ms", "must be <= delay_ms")
        if ev.action == "disk-full" and not scn.faults.expect_failure:
            ctx.fail(
                "faults.expect_failure",
                "a disk-full fault fails the run on purpose (its agent cannot journal readings): say what "
                "the failure must contain, e.g. 'is full'",
            )
        if ev.reorder_percent and not ev.delay_ms:
            ctx.fail(
                f"{p}.reorder_percent", "reordering needs a delay_ms (the reordered share skips the delay)"
            )


def parse(text: str, source: str = "<scenario>") -> Scenario:
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ScenarioError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    lines: dict[str, int] = {}
    if node is not None:
        _lines(node, "", lines)
    ctx = _Ctx(source, lines)
    scn = _build(ctx, "", Scenario, data if data is not None else {})
    _check(ctx, scn)
    return scn


def load(path: str | Path) -> tuple[Scenario, str]:
    """Load and validate a scenario file; returns the scenario and the file's text (kept in the bundle)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    return parse(text, str(path)), text


def pilot(devices: int, duration_s: float) -> Scenario:
    """The interactive pilot CLI: one long normal phase; `offline` / `online` are typed by a person."""
    return Scenario(
        name="interactive",
        devices=Devices(count=devices),
        phases=[Phase(name="interactive", kind="normal", duration_s=duration_s)],
    )
