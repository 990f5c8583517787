"""Request and response bodies of the operator API (`/v1/admin/…`): tenants and their API keys.

A key's raw value and signing secret appear in exactly two responses, `KeyIssuedOut` (creation) and
`KeyRotatedOut` (rotation): every other body describes a key by its public id.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from events.records.tenants import TENANT_ID_PATTERN, TenantQuotas
from events.states import ApiKeyStatus, TenantStatus
from infra.repositories.api_keys import MAX_ROTATION_GRACE_SECONDS


class TenantCreateIn(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")

    tenantId: str = Field(pattern=TENANT_ID_PATTERN, description="The tenant's id: letters, digits, `_ . -`.")
    displayName: str | None = Field(default=None, max_length=200, description="A name for people.")
    quotas: TenantQuotas | None = Field(default=None, description="Overrides of the deployment's default quotas.")


class TenantUpdateIn(BaseModel):
    """A change to a tenant: only the members sent change (`quotas` is replaced whole)."""

    model_config = ConfigDict(extra="forbid")

    displayName: str | None = Field(default=None, max_length=200, description="A name for people.")
    status: TenantStatus | None = Field(default=None, description="active, or suspended (its keys are refused).")
    quotas: TenantQuotas | None = Field(default=None, description="Overrides of the default quotas, replaced whole.")


class TenantOut(BaseModel):
    """A tenant."""

    tenantId: str
    displayName: str | None = None
    status: TenantStatus
    quotas: TenantQuotas = Field(description="The tenant's own overrides (members left out use the defaults).")
    storageBytes: int = Field(description="Bytes of images the tenant has stored.")
    createdAt: str
    updatedAt: str


class EffectiveQuotas(BaseModel):
    """The limits that apply to a tenant: its overrides over the deployment's defaults. 0: no limit."""

    activeGenerations: int
    activeTrainings: int
    requestsPerSecond: float
    trainingImagesPerModel: int
    storageBytes: int


class TenantUsage(BaseModel):
    """What a tenant uses of what its quotas bound."""

    storageBytes: int


class KeyOut(BaseModel):
    """An API key, described without its value, hash or secret."""

    keyId: str
    tenantId: str
    label: str
    status: ApiKeyStatus
    createdAt: str
    revokedAt: str | None = None
    expiresAt: float | None = Field(default=None, description="Epoch seconds after which the key is refused.")
    rotatedTo: str | None = Field(default=None, description="The id of the key that replaced this one.")


class TenantDetailOut(TenantOut):
    """A tenant with its effective limits, its usage and its keys."""

    effectiveQuotas: EffectiveQuotas
    usage: TenantUsage
    keys: list[KeyOut]


class KeyCreateIn(BaseModel):
    """A new API key for a tenant (a tenant without a record gets one, with the default quotas)."""

    model_config = ConfigDict(extra="forbid")

    tenantId: str = Field(pattern=TENANT_ID_PATTERN, description="The tenant the key acts for.")
    label: str | None = Field(default=None, max_length=200, description="What the key is for.")
    requireSignedDeletes: bool = Field(
        default=True, description="Whether deleting a model with this key must prove its signing secret."
    )


class KeyIssuedOut(BaseModel):
    """A new key: the only response that shows its value and signing secret."""

    keyId: str
    apiKey: str = Field(description="The key: shown once, stored only as a hash.")
    signingSecret: str = Field(description="The key's signing secret: shown once.")
    tenantId: str
    label: str
    createdAt: str
    tenantCreated: bool = Field(default=False, description="Whether the tenant's record was created with the key.")


class KeyRotateIn(BaseModel):
    """How long the replaced key keeps working."""

    model_config = ConfigDict(extra="forbid")

    graceSeconds: int = Field(
        default=3600, ge=0, le=MAX_ROTATION_GRACE_SECONDS, description="Seconds the old key keeps working; 0: none."
    )


class KeyRotatedOut(KeyIssuedOut):
    """The replacing key (shown once) and when the replaced one stops working."""

    previousKeyId: str
    previousExpiresAt: float = Field(description="Epoch seconds at which the replaced key is refused.")


# --- issue 16: run-time base models ---
class BaseModelRegisterIn(BaseModel):
    """A base model's weights, registered under the path's name (replacing its entry if it has one)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        min_length=1,
        max_length=1024,
        description="An absolute local path or s3:// URI: a diffusers folder, or one .safetensors checkpoint.",
    )
    family: Literal["sd-1_5", "sd-xl", "flux.1"] | None = Field(
        default=None, description="Its architecture; omitted, the name says (`sd-xl…`/`sdxl…`, `flux…`, else sd-1_5)."
    )
    config: str | None = Field(
        default=None,
        max_length=1024,
        description="A single file's configuration: a diffusers folder (local or s3://) of its family, no weights.",
    )
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The single file's SHA-256, checked on download."
    )


class BaseModelRegisteredOut(BaseModel):
    """A registered base model."""

    name: str
    source: str
    family: str
    config: str | None = None
    sha256: str | None = None
    createdAt: str
    updatedAt: str
