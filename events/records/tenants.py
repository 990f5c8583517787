"""Tenants: who a set of API keys acts for, the quotas that bound it, and what it has stored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import TenantStatus

# Tenant ids appear in S3 keys (uploads/{tenant}/…) and in every record: the same alphabet everywhere.
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"


# Bounds that keep every limit a number DynamoDB stores exactly (its numbers have 38 digits; no infinity).
MAX_COUNT = 1_000_000
MAX_STORAGE_BYTES = 10**15  # a petabyte
MAX_REQUESTS_PER_SECOND = 1_000_000.0
# Below this a rate would read as 0, "no limit", once stored: the tightest rate is one request per 1,000 s.
MIN_REQUESTS_PER_SECOND = 0.001


class TenantQuotas(BaseModel):
    """A tenant's own limits; each one left out falls back to the deployment's default (LF_QUOTA_*). 0: no limit."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    activeGenerations: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description="Generations queued or running at once."
    )
    activeTrainings: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description="Trainings queued or running at once."
    )
    requestsPerSecond: float | None = Field(
        default=None,
        ge=0,
        le=MAX_REQUESTS_PER_SECOND,
        description=f"Requests per second of one API key (0: no limit, else at least {MIN_REQUESTS_PER_SECOND}).",
    )
    trainingImagesPerModel: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description="Training images of one model."
    )
    storageBytes: int | None = Field(
        default=None, ge=0, le=MAX_STORAGE_BYTES, description="Bytes of images the tenant may store."
    )

    @field_validator("requestsPerSecond")
    @classmethod
    def _a_rate_or_none(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_REQUESTS_PER_SECOND:
            raise ValueError(f"a rate must be 0 (no limit) or at least {MIN_REQUESTS_PER_SECOND} per second")
        return value


class TenantRecord(StoredRecord):
    """One tenant, by id."""

    # Not checked against TENANT_ID_PATTERN here: keys issued before the operator API may name any tenant, and a
    # stored record must stay readable. New tenants are checked where they are created (the operator API).
    tenantId: str = Field(min_length=1, description="The tenant's id (the table's key).")
    displayName: str | None = Field(default=None, max_length=200, description="A name for people.")
    status: TenantStatus = Field(default=TenantStatus.ACTIVE, description="active, or suspended.")
    quotas: TenantQuotas = Field(default_factory=TenantQuotas, description="Overrides of the default quotas.")
    storageBytes: int = Field(default=0, ge=0, description="Bytes of images the tenant has stored (usage).")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the tenant was created.")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When the tenant was last changed.")
