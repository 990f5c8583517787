"""One-time tokens, remembered long enough to refuse their reuse."""

from __future__ import annotations

from pydantic import Field

from events.records.base import StoredRecord


class NonceRecord(StoredRecord):
    """A token (such as a request signature) seen once."""

    nonce: str = Field(min_length=1, description="The token (the table's key).")
    expiresAt: int = Field(description="When it may be forgotten (epoch seconds, DynamoDB TTL).")
