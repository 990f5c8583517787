"""The operator API, `/v1/admin/…`: tenants, their API keys, and the base models registered at run time. Every
route needs the operator's token (`functions.api.admin_auth`), never a tenant's key; the logic is in
`functions.api.services.admin`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from events.records.base_models import BASE_MODEL_NAME_PATTERN
from events.records.tenants import TENANT_ID_PATTERN
from functions.api.admin_auth import OperatorDep
from functions.api.dependencies import ContextDep, IdPath
from functions.api.openapi import error_responses
from functions.api.schemas.admin import (
    BaseModelRegisteredOut,
    BaseModelRegisterIn,
    KeyCreateIn,
    KeyIssuedOut,
    KeyOut,
    KeyRotatedOut,
    KeyRotateIn,
    TenantCreateIn,
    TenantDetailOut,
    TenantOut,
    TenantUpdateIn,
)
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.services import admin as service

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses={**ERROR_RESPONSES, **error_responses(403)})

TenantIdPath = Annotated[str, Path(pattern=TENANT_ID_PATTERN)]
KeyIdPath = IdPath


@router.post(
    "/tenants",
    status_code=201,
    response_model=TenantOut,
    response_model_exclude_none=True,
    responses=error_responses(409),
)
async def create_tenant(body: TenantCreateIn, _: OperatorDep, context: ContextDep) -> TenantOut:
    """Create a tenant (409 if the id is taken), optionally with its own quotas."""
    return await service.create_tenant(context, body)


@router.get("/tenants", response_model=list[TenantOut], response_model_exclude_none=True)
async def list_tenants(_: OperatorDep, context: ContextDep) -> list[TenantOut]:
    """Every tenant, by id."""
    return await service.list_tenants(context)


@router.get(
    "/tenants/{tenantId}",
    response_model=TenantDetailOut,
    response_model_exclude_none=True,
    responses=error_responses(404),
)
async def get_tenant(tenantId: TenantIdPath, _: OperatorDep, context: ContextDep) -> TenantDetailOut:
    """A tenant with its quotas, the limits in effect, its usage and its keys (never their values)."""
    return await service.show_tenant(context, tenantId)


@router.patch(
    "/tenants/{tenantId}", response_model=TenantOut, response_model_exclude_none=True, responses=error_responses(404)
)
async def update_tenant(tenantId: TenantIdPath, body: TenantUpdateIn, _: OperatorDep, context: ContextDep) -> TenantOut:
    """Change a tenant's display name, status (a suspended tenant's keys are refused) or quotas."""
    return await service.update_tenant(context, tenantId, body)


@router.post("/keys", status_code=201, response_model=KeyIssuedOut, response_model_exclude_none=True)
async def create_key(body: KeyCreateIn, _: OperatorDep, context: ContextDep) -> KeyIssuedOut:
    """Issue an API key and its signing secret for a tenant (created if it has no record): shown this once."""
    return await service.create_key(context, body)


@router.get("/keys", response_model=list[KeyOut], response_model_exclude_none=True)
async def list_keys(
    _: OperatorDep,
    context: ContextDep,
    tenant: Annotated[str | None, Query(pattern=TENANT_ID_PATTERN, description="Only this tenant's keys.")] = None,
) -> list[KeyOut]:
    """Every key (or one tenant's), without values, hashes or secrets."""
    return await service.list_keys(context, tenant)


@router.post(
    "/keys/{keyId}/revoke", response_model=KeyOut, response_model_exclude_none=True, responses=error_responses(404)
)
async def revoke_key(keyId: KeyIdPath, _: OperatorDep, context: ContextDep) -> KeyOut:
    """Revoke a key (again is fine): every API process refuses it within a few seconds."""
    return await service.revoke_key(context, keyId)


@router.post(
    "/keys/{keyId}/rotate",
    status_code=201,
    response_model=KeyRotatedOut,
    response_model_exclude_none=True,
    responses=error_responses(404, 409),
)
async def rotate_key(
    keyId: KeyIdPath, _: OperatorDep, context: ContextDep, body: KeyRotateIn | None = None
) -> KeyRotatedOut:
    """Issue a key replacing this one (same tenant, label, delete policy); the old one keeps working for
    `graceSeconds` (default an hour; 0: revoked now)."""
    return await service.rotate_key(context, keyId, (body or KeyRotateIn()).graceSeconds)


# --- issue 16: run-time base models ---
BaseModelNamePath = Annotated[str, Path(pattern=BASE_MODEL_NAME_PATTERN)]


@router.get("/base-models", response_model=list[BaseModelRegisteredOut], response_model_exclude_none=True)
async def list_base_models(_: OperatorDep, context: ContextDep) -> list[BaseModelRegisteredOut]:
    """The base models registered at run time, by name (those of the settings and the built-ins are not listed)."""
    return await service.list_registered_base_models(context)


@router.get(
    "/base-models/{name}",
    response_model=BaseModelRegisteredOut,
    response_model_exclude_none=True,
    responses=error_responses(404),
)
async def get_base_model(name: BaseModelNamePath, _: OperatorDep, context: ContextDep) -> BaseModelRegisteredOut:
    """One registered base model."""
    return await service.show_registered_base_model(context, name)


@router.put(
    "/base-models/{name}",
    response_model=BaseModelRegisteredOut,
    response_model_exclude_none=True,
    responses=error_responses(409, 422),
)
async def put_base_model(
    name: BaseModelNamePath, body: BaseModelRegisterIn, _: OperatorDep, context: ContextDep
) -> BaseModelRegisteredOut:
    """Register a base model under `name` (or replace its entry) without a redeploy: every API process and worker
    offers it within a few seconds. A name the deployment itself uses (a built-in, the settings) is refused."""
    return await service.register_base_model(context, name, body)


@router.delete("/base-models/{name}", status_code=204, responses=error_responses(404))
async def delete_base_model(name: BaseModelNamePath, _: OperatorDep, context: ContextDep) -> Response:
    """Unregister a base model: new jobs on it are refused within a few seconds; its models keep their records."""
    await service.unregister_base_model(context, name)
    return Response(status_code=204)
