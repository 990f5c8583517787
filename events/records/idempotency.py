"""Idempotency records: the first request with a key claims it, later ones replay its response."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.records.base import StoredRecord
from events.states import IdempotencyStatus


class StoredResponse(BaseModel):
    """The first request's response, replayed to every repeat."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: int = Field(description="The HTTP status code.")
    headers: dict[str, str] = Field(description="The response headers that are replayed.")
    body: str = Field(description="The response body, as text.")


class IdempotencyRecord(StoredRecord):
    """What is known about one key (in one scope). Times here are epoch seconds (DynamoDB's TTL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: str = Field(min_length=1, description="Caller, endpoint and key together (the table's key).")
    fingerprint: str = Field(description="Hash of the first request: a repeat with another body is refused.")
    status: IdempotencyStatus = Field(description="in_progress while the first request runs, then completed.")
    lockedUntil: int | None = Field(default=None, description="In progress: when the claim lapses (epoch s).")
    expiresAt: int = Field(description="When the record is forgotten (epoch seconds, DynamoDB TTL).")
    response: StoredResponse | None = Field(default=None, description="Completed: the response to replay.")
