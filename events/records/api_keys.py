"""API key records, stored hashed: the raw key is shown once and never written anywhere."""

from __future__ import annotations

from pydantic import Field

from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import ApiKeyStatus


class ApiKeyRecord(StoredRecord):
    """One API key of a tenant, by the hash of the key."""

    keyHash: str = Field(min_length=1, description="SHA-256 of the raw key (the table's key).")
    keyId: str = Field(min_length=1, description="The key's public id (`key_` and the hash's start).")
    tenantId: str = Field(min_length=1, description="The tenant the key acts for.")
    name: str = Field(description="The key's display name.")
    status: ApiKeyStatus = Field(default=ApiKeyStatus.ACTIVE, description="active, or revoked.")
    signingSecret: str | None = Field(
        default=None, description="The secret signed calls prove (stored as given: HMACs must be verified)."
    )
    requireSignedDeletes: bool = Field(
        default=True, description="Whether deleting a model with this key must prove the signing secret."
    )
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the key was stored.")
    revokedAt: IsoTime | None = Field(default=None, description="When the key was revoked.")
    expiresAt: float | None = Field(
        default=None, description="Epoch seconds after which the key is refused (a rotated-out key's grace period)."
    )
    rotatedTo: str | None = Field(default=None, description="The id of the key that replaced this one.")
