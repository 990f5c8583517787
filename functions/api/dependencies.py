"""FastAPI dependencies, as `Annotated` aliases: settings, the service context, the caller's tenant."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import Depends, Request

from functions.api.errors import ApiError
from infra.runtime import ServiceContext
from infra.settings import Settings

log = logging.getLogger(__name__)


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_context(request: Request) -> ServiceContext:
    """The process's clients, opened on first use (on Lambda, once per warm container)."""
    state = request.app.state
    if state.context is None:
        async with state.context_lock:
            if state.context is None:
                try:
                    state.context = await ServiceContext(state.settings).open()
                except (KafkaError, OSError) as exc:
                    log.error("cannot reach a backing service: %s", exc)
                    raise ApiError(
                        503,
                        "service_unavailable",
                        "a backing service is unreachable; try again shortly",
                        headers={"Retry-After": "5"},
                    ) from exc
    return state.context


ContextDep = Annotated[ServiceContext, Depends(get_context)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def get_tenant(request: Request, context: ContextDep) -> str:
    """The tenant of the request's `Authorization: Bearer <api key>`; 401 otherwise."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <api key>' header", headers=_UNAUTHORIZED)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "unauthorized", "the Authorization header must be 'Bearer <api key>'", headers=_UNAUTHORIZED
        )
    if len(token) > 256:
        raise ApiError(401, "unauthorized", "invalid API key", headers=_UNAUTHORIZED)
    tenant = await context.api_keys.tenant_for(token)
    if tenant is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers=_UNAUTHORIZED)
    return tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def new_context_lock() -> asyncio.Lock:
    """The lock that guards lazy opening of the context."""
    return asyncio.Lock()
