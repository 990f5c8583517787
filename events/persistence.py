"""What a repository promises its callers, whatever stores the records: the outcomes of conditional writes and
the failures a use case must tell apart. Adapters raise these; use cases catch them; neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

RecordT = TypeVar("RecordT")


class RecordExists(Exception):
    """A record with this id was already created."""


class StaleWrite(Exception):
    """A conditional write lost: the record changed since it was read."""


class PublishFailed(Exception):
    """The broker did not acknowledge an event (down, unreachable, or refusing it)."""


class AdvanceOutcome(StrEnum):
    """What an attempt to move a record to a status did."""

    APPLIED = "applied"
    ALREADY = "already"  # the record was already in the (terminal) target status: a duplicate
    REJECTED = "rejected"  # the state machine forbids it (out of order, or terminal)
    MISSING = "missing"


@dataclass(frozen=True)
class Advance(Generic[RecordT]):
    """The outcome of `advance`, with the record as it now stands."""

    outcome: AdvanceOutcome
    record: RecordT | None

    @property
    def job(self) -> RecordT | None:
        """The record, named for job callers."""
        return self.record


__all__ = ["Advance", "AdvanceOutcome", "PublishFailed", "RecordExists", "StaleWrite"]
