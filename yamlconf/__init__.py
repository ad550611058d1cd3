"""Config files into pydantic models, with errors an operator can act on: the dotted key and its line.

The gateway's config (``gateway.config``) and the simulator's scenarios (``simulator.scenario``) both
declare their schema once, as pydantic dataclasses, and load through this module: :func:`compose`
parses YAML keeping the line of every key and list item, :func:`problems` turns a pydantic
``ValidationError`` into one :class:`Problem` per mistake (``faults.events[0].at_s``, line 7, "must be
in 0..3600, got -2"), in file order. Validators raise :func:`fail` to point at a key below the model
they check (``transport.backoff_cap_ms`` from the ``transport`` model) and :func:`between` gives ranges
an explicit message. Kept apart from both packages so neither imports the other.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import yaml
from pydantic import AfterValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

Loc = tuple[str | int, ...]
Lines = Mapping[Loc, int]


@dataclass(frozen=True)
class Problem:
    """One mistake in a config file: where it is (``path``, ``line`` when known) and what to fix."""

    loc: Loc
    line: int | None
    message: str

    @property
    def path(self) -> str:
        return dotted(self.loc)


def dotted(loc: Loc) -> str:
    """``('faults', 'events', 0, 'at_s')`` -> ``faults.events[0].at_s``; the empty location is the top."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def compose(text: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML into plain data plus the 1-based line of every key and list item.

    Raises ``yaml.YAMLError`` for text that is not YAML (its ``problem_mark`` has the line).
    """
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[Loc, int] = {}
    if node is None:
        return None, lines
    _walk(node, (), lines)
    return yaml.safe_load(text), lines


def _walk(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*loc, str(key.value))
            out[sub] = key.start_mark.line + 1
            _walk(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[(*loc, i)] = item.start_mark.line + 1
            _walk(item, (*loc, i), out)


def line_of(lines: Lines, loc: Loc) -> int | None:
    """The line of ``loc``, else of its nearest ancestor in the file (a key the file does not set)."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def fail(message: str, *at: str) -> NoReturn:
    """Raise from a validator: ``message`` about the model itself, or about the key ``at`` below it.

    Several ``at`` keys are alternatives: the error points at the first one the file sets (a datagram
    that does not fit blames ``flush.max_datagram_bytes`` if written, else ``reading.payload_bytes``).
    """
    raise PydanticCustomError("config", "{reason}", {"reason": message, "at": list(at)})


def between(lo: float | None, hi: float | None, note: str = "") -> AfterValidator:
    """Annotated metadata: a number in ``lo..hi`` (``None`` = open), the message stating the range."""
    span = (
        f"in {lo}..{hi}"
        if lo is not None and hi is not None
        else f"at least {lo}"
        if hi is None
        else f"at most {hi}"
    )
    span += f" ({note})" if note else ""

    def check(value: float) -> float:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            fail(f"must be {span}, got {value!r}")
        return value

    return AfterValidator(check)


def problems(exc: ValidationError, root: type, lines: Lines) -> list[Problem]:
    """One :class:`Problem` per error of ``exc`` (validating ``root``), in the order of the file."""
    found = [_problem(err, root, lines) for err in exc.errors()]
    return sorted(found, key=lambda p: (p.line is None, p.line or 0))


def _problem(err: ErrorDetails, root: type, lines: Lines) -> Problem:
    loc: Loc = tuple(err["loc"])
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "config":
        at = [tuple(_split(a)) for a in ctx.get("at") or []]
        chosen = next((a for a in at if (*loc, *a) in lines), at[0] if at else ())
        loc = (*loc, *chosen)
        return Problem(loc, line_of(lines, loc), str(ctx["reason"]))
    if kind in ("missing", "missing_argument", "missing_keyword_argument"):
        return Problem(loc[:-1], line_of(lines, loc[:-1]), f"missing required key '{loc[-1]}'")
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        allowed = ", ".join(_fields(root, loc[:-1]))
        return Problem(loc, line_of(lines, loc), f"unknown key; allowed here: {allowed}")
    return Problem(loc, line_of(lines, loc), _MESSAGES.get(kind, _pydantic_message)(err, value))


def _split(path: str) -> list[str]:
    return [part for part in path.split(".") if part]


def _pydantic_message(err: ErrorDetails, value: object) -> str:
    if err["type"] == "value_error" and "error" in (err.get("ctx") or {}):
        return str((err.get("ctx") or {})["error"])
    return f"{err['msg'][0].lower()}{err['msg'][1:]}, got {value!r}"


def _kind(what: str) -> Callable[[ErrorDetails, object], str]:
    return lambda err, value: f"must be {what}, got {value!r}"


def _container(what: str) -> Callable[[ErrorDetails, object], str]:
    return lambda err, value: f"must be {what}, got {type(value).__name__}"


def _choices(err: ErrorDetails, value: object) -> str:
    expected = str((err.get("ctx") or {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
    return f"must be one of {expected}; got {value!r}"


_MESSAGES: dict[str, Callable[[ErrorDetails, object], str]] = {
    **dict.fromkeys(("int_type", "int_parsing", "int_from_float", "int_parsing_size"), _kind("an integer")),
    **dict.fromkeys(("float_type", "float_parsing", "finite_number"), _kind("a number")),
    **dict.fromkeys(("bool_type", "bool_parsing"), _kind("true or false")),
    **dict.fromkeys(("string_type",), _kind("a string")),
    **dict.fromkeys(("list_type",), _container("a list")),
    **dict.fromkeys(
        ("dataclass_type", "dataclass_exact_type", "dict_type", "model_type"), _container("a mapping")
    ),
    "literal_error": _choices,
}


def _fields(root: type, loc: Loc) -> list[str]:
    """Names of the keys allowed at ``loc`` (a dataclass reached from ``root`` through fields and lists)."""
    tp: object = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else object
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            tp = typing.get_type_hints(tp, include_extras=True).get(part, object)
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [f.name for f in dataclasses.fields(tp)]
    return []


def _unwrap(tp: object) -> object:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp
