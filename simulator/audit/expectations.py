"""What the fleet tells the audit to expect, per device, as a typed model.

On the wire (an agent's ``/results`` and ``agents/*.json`` in a bundle) an expectation stays the compact
positional row the fleet has always written, ``[id, first_seq, next_seq, outage_first, outage_end,
drops]`` (100k devices: a list per device, not an object), so bundle files keep their content; the
audit reads each row through ``Expectation.from_row``, which names the field that is wrong.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

FIELDS = ("device", "first_seq", "next_seq", "outage_first", "outage_end", "drops")


class ExpectationError(ValueError):
    """A malformed expected row in an agent's results."""


class Expectation(BaseModel):
    """One device's readings: sequences first_seq..next_seq-1 were generated; those in the outage
    window [outage_first, outage_end) were buffered (-1 when there was none); ``drops`` are inclusive
    ranges the device dropped on overflow and no one may expect."""

    model_config = ConfigDict(frozen=True)

    device: str
    first_seq: int
    next_seq: int
    outage_first: int = -1
    outage_end: int = -1
    drops: list[tuple[int, int]] = []

    @classmethod
    def from_row(cls, row: Any) -> Expectation:
        if not isinstance(row, list | tuple) or len(row) != len(FIELDS):
            raise ExpectationError(
                f"expected row must be a list of {len(FIELDS)} ({', '.join(FIELDS)}): {row!r}"
            )
        try:
            return cls(**dict(zip(FIELDS, row, strict=True)))
        except ValidationError as exc:
            where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ExpectationError(f"expected row {row!r}: {where}") from None

    def to_row(self) -> list[Any]:
        return [
            self.device,
            self.first_seq,
            self.next_seq,
            self.outage_first,
            self.outage_end,
            [list(d) for d in self.drops],
        ]

    @property
    def generated(self) -> int:
        return self.next_seq - self.first_seq
