"""The operator's work: tenants (created, listed, changed, shown with their limits, usage and keys) and their API
keys (issued, listed, revoked, rotated). Only the calls that issue a key return its value and secret."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from events.records.api_keys import ApiKeyRecord
from events.records.base_models import RegisteredBaseModelRecord
from events.records.tenants import TenantQuotas, TenantRecord
from events.usecases.errors import Conflict, Invalid, NotFound
from events.usecases.quotas import effective_limits
from events.validation import error_message, error_path
from functions.api.schemas.admin import (
    BaseModelRegisteredOut,
    BaseModelRegisterIn,
    EffectiveQuotas,
    KeyCreateIn,
    KeyIssuedOut,
    KeyOut,
    KeyRotatedOut,
    TenantCreateIn,
    TenantDetailOut,
    TenantOut,
    TenantUpdateIn,
    TenantUsage,
)
from infra.base_models import base_model_source_problem, family_of_name, reserved_base_model_name
from infra.repositories.api_keys import KeyNotRotatable, generate_api_key, hash_api_key
from infra.repositories.tenants import TenantExists
from infra.runtime import ServiceContext
from infra.settings import BaseModelSource, Settings
from infra.signing import generate_signing_secret

log = logging.getLogger(__name__)


def effective_quotas(settings: Settings, overrides: TenantQuotas) -> EffectiveQuotas:
    """The limits that apply (events.usecases.quotas' merge of the defaults and the tenant's overrides)."""
    limits = effective_limits(settings, overrides)
    return EffectiveQuotas(
        activeGenerations=limits.active_generations,
        activeTrainings=limits.active_trainings,
        requestsPerSecond=limits.requests_per_second,
        trainingImagesPerModel=limits.training_images_per_model,
        storageBytes=limits.storage_bytes,
    )


def tenant_out(record: TenantRecord) -> TenantOut:
    """A tenant's public view."""
    return TenantOut.model_validate(record.model_dump(mode="json"))


def key_out(record: ApiKeyRecord) -> KeyOut:
    """A key's view without its value, hash or secret."""
    return KeyOut(
        keyId=record.keyId,
        tenantId=record.tenantId,
        label=record.name,
        status=record.status,
        createdAt=record.createdAt,
        revokedAt=record.revokedAt,
        expiresAt=record.expiresAt,
        rotatedTo=record.rotatedTo,
    )


def _tenant_not_found(tenant_id: str) -> NotFound:
    return NotFound("tenant_not_found", f"tenant {tenant_id!r} does not exist", field="tenantId")


def _key_not_found(key_id: str) -> NotFound:
    return NotFound("key_not_found", f"no key has the id {key_id!r}", field="keyId")


async def create_tenant(context: ServiceContext, body: TenantCreateIn) -> TenantOut:
    """A new tenant; 409 if the id is taken."""
    record = TenantRecord(tenantId=body.tenantId, displayName=body.displayName, quotas=body.quotas or TenantQuotas())
    try:
        await context.tenants.create(record)
    except TenantExists as exc:
        raise Conflict("tenant_exists", f"tenant {body.tenantId!r} exists already", field="tenantId") from exc
    log.info("tenant created", extra={"tenant": body.tenantId})
    return tenant_out(record)


async def list_tenants(context: ServiceContext) -> list[TenantOut]:
    """Every tenant, by id."""
    return [tenant_out(record) for record in await context.tenants.list()]


async def show_tenant(context: ServiceContext, tenant_id: str) -> TenantDetailOut:
    """A tenant with its effective limits, usage and keys; 404 if it has no record."""
    record = await context.tenants.get(tenant_id)
    if record is None:
        raise _tenant_not_found(tenant_id)
    keys = await context.api_keys.list(tenant_id)
    return TenantDetailOut(
        **tenant_out(record).model_dump(),
        effectiveQuotas=effective_quotas(context.settings, record.quotas),
        usage=TenantUsage(storageBytes=record.storageBytes),
        keys=[key_out(key) for key in keys],
    )


async def update_tenant(context: ServiceContext, tenant_id: str, body: TenantUpdateIn) -> TenantOut:
    """Change a tenant's name, status or quotas; 404 if it has no record."""
    record = await context.tenants.update(
        tenant_id, quotas=body.quotas, status=body.status, display_name=body.displayName
    )
    if record is None:
        raise _tenant_not_found(tenant_id)
    log.info("tenant changed", extra={"tenant": tenant_id, "changed": sorted(body.model_fields_set)})
    return tenant_out(record)


async def create_key(context: ServiceContext, body: KeyCreateIn) -> KeyIssuedOut:
    """Issue a key and its signing secret for a tenant, creating the tenant's record if it has none."""
    tenant_created = False
    if await context.tenants.get(body.tenantId) is None:
        try:
            await context.tenants.create(TenantRecord(tenantId=body.tenantId))
            tenant_created = True
        except TenantExists:
            pass  # created by another call meanwhile: it exists, which is all this needs
    raw_key, secret = generate_api_key(), generate_signing_secret()
    label = body.label or f"key for {body.tenantId}"
    await context.api_keys.put(
        raw_key,
        tenant_id=body.tenantId,
        name=label,
        signing_secret=secret,
        require_signed_deletes=body.requireSignedDeletes,
    )
    record = await context.api_keys.get_by_hash(hash_api_key(raw_key))
    assert record is not None  # just written, read consistently
    log.info("api key issued", extra={"tenant": body.tenantId, "keyId": record.keyId})
    return KeyIssuedOut(
        keyId=record.keyId,
        apiKey=raw_key,
        signingSecret=secret,
        tenantId=record.tenantId,
        label=record.name,
        createdAt=record.createdAt,
        tenantCreated=tenant_created,
    )


async def list_keys(context: ServiceContext, tenant_id: str | None) -> list[KeyOut]:
    """Every key, or one tenant's, without values or secrets."""
    return [key_out(record) for record in await context.api_keys.list(tenant_id)]


async def revoke_key(context: ServiceContext, key_id: str) -> KeyOut:
    """Revoke a key by its id (again is fine); every API process refuses it within LF_API_KEY_CACHE_SECONDS."""
    record = await context.api_keys.get(key_id)
    if record is None:
        raise _key_not_found(key_id)
    if not await context.api_keys.revoke_hash(record.keyHash):
        raise _key_not_found(key_id)  # deleted between the read and the revocation
    revoked = await context.api_keys.get_by_hash(record.keyHash)
    if revoked is None:
        raise _key_not_found(key_id)
    log.info("api key revoked", extra={"tenant": record.tenantId, "keyId": key_id})
    return key_out(revoked)


async def rotate_key(context: ServiceContext, key_id: str, grace_seconds: int) -> KeyRotatedOut:
    """A new key replacing `key_id` (same tenant, label and delete policy); the old one works `grace_seconds` more.
    409 if the old key is revoked, expired or already rotated."""
    old = await context.api_keys.get(key_id)
    if old is None:
        raise _key_not_found(key_id)
    raw_key, secret = generate_api_key(), generate_signing_secret()
    try:
        old_after, new = await context.api_keys.rotate(old, raw_key, secret, grace_seconds=grace_seconds)
    except KeyNotRotatable as exc:
        raise Conflict("key_not_rotatable", str(exc), field="keyId") from exc
    assert old_after.expiresAt is not None  # rotation always sets it
    log.info("api key rotated", extra={"tenant": old.tenantId, "keyId": key_id, "rotatedTo": new.keyId})
    return KeyRotatedOut(
        keyId=new.keyId,
        apiKey=raw_key,
        signingSecret=secret,
        tenantId=new.tenantId,
        label=new.name,
        createdAt=new.createdAt,
        previousKeyId=old.keyId,
        previousExpiresAt=old_after.expiresAt,
    )


# --- issue 16: run-time base models ---
def registered_base_model_out(record: RegisteredBaseModelRecord) -> BaseModelRegisteredOut:
    """A registered base model's view."""
    return BaseModelRegisteredOut.model_validate(record.model_dump(mode="json"))


def _base_model_not_found(name: str) -> NotFound:
    return NotFound("base_model_not_found", f"no base model {name!r} is registered", field="name")


async def register_base_model(context: ServiceContext, name: str, body: BaseModelRegisterIn) -> BaseModelRegisteredOut:
    """Register (or re-register) a base model; 409 for a name the deployment itself uses, 422 for weights the
    workers could not read."""
    if reason := reserved_base_model_name(name, context.settings):
        raise Conflict("base_model_reserved", f"{reason}: choose another name", field="name")
    try:
        entry = BaseModelSource(
            source=body.source,
            family=body.family or family_of_name(name).value,
            config=body.config,
            sha256=body.sha256.lower() if body.sha256 else None,
        )
    except ValidationError as exc:  # a pickle checkpoint, among others: the entry's own rules
        first = exc.errors()[0]
        field = error_path(first) or "source"
        raise Invalid("invalid_base_model", f"{field}: {error_message(first)}", field=field) from exc
    if problem := base_model_source_problem(entry):
        field, why = problem
        raise Invalid("invalid_base_model", f"{field} {why}", field=field)
    record = RegisteredBaseModelRecord(name=name, **entry.model_dump())
    record = await context.registered_base_models.put(record)
    log.info("base model %s registered (%s, %s)", name, record.family, record.source)
    return registered_base_model_out(record)


async def list_registered_base_models(context: ServiceContext) -> list[BaseModelRegisteredOut]:
    """Every base model registered at run time, by name (the settings' and the built-ins are not listed)."""
    return [registered_base_model_out(record) for record in await context.registered_base_models.list()]


async def show_registered_base_model(context: ServiceContext, name: str) -> BaseModelRegisteredOut:
    """One registered base model; 404 if none has the name."""
    record = await context.registered_base_models.get(name)
    if record is None:
        raise _base_model_not_found(name)
    return registered_base_model_out(record)


async def unregister_base_model(context: ServiceContext, name: str) -> None:
    """Unregister a base model (its models keep their records; new jobs on it are refused); 404 if not registered."""
    if not await context.registered_base_models.delete(name):
        raise _base_model_not_found(name)
    log.info("base model %s unregistered", name)
