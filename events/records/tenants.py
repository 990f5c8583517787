"""Tenants: who a set of API keys acts for, the quotas that bound it, and what it has stored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import TenantStatus

# Tenant ids appear in S3 keys (uploads/{tenant}/…) and in every record: the same alphabet everywhere.
TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"


class TenantQuotas(BaseModel):
    """A tenant's own limits; each one left out falls back to the deployment's default (LF_QUOTA_*). 0: no limit."""

    model_config = ConfigDict(extra="forbid")

    activeGenerations: int | None = Field(default=None, ge=0, description="Generations queued or running at once.")
    activeTrainings: int | None = Field(default=None, ge=0, description="Trainings queued or running at once.")
    requestsPerSecond: float | None = Field(default=None, ge=0, description="Requests per second of one API key.")
    trainingImagesPerModel: int | None = Field(default=None, ge=0, description="Training images of one model.")
    storageBytes: int | None = Field(default=None, ge=0, description="Bytes of images the tenant may store.")


class TenantRecord(StoredRecord):
    """One tenant, by id."""

    tenantId: str = Field(pattern=TENANT_ID_PATTERN, description="The tenant's id (the table's key).")
    displayName: str | None = Field(default=None, max_length=200, description="A name for people.")
    status: TenantStatus = Field(default=TenantStatus.ACTIVE, description="active, or suspended.")
    quotas: TenantQuotas = Field(default_factory=TenantQuotas, description="Overrides of the default quotas.")
    storageBytes: int = Field(default=0, ge=0, description="Bytes of images the tenant has stored (usage).")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the tenant was created.")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When the tenant was last changed.")
