"""FastAPI dependencies, as `Annotated` aliases: settings, the service context, the caller's tenant."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import Depends, Request

from functions.api.errors import ApiError
from infra.runtime import ServiceContext
from infra.settings import Settings
from infra.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches

log = logging.getLogger(__name__)


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_context(request: Request) -> ServiceContext:
    """The process's clients, opened on first use (on Lambda, once per warm container)."""
    return await open_context(request.app.state)


async def open_context(state: Any) -> ServiceContext:
    """The app's service context (`state` is the app's state), opened once; 503 if a backend is down."""
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
    record = await context.api_keys.lookup(token)
    if record is None:
        raise ApiError(401, "unauthorized", "invalid API key", headers=_UNAUTHORIZED)
    request.state.api_key = record  # for the signature check of destructive calls
    return record["tenantId"]


TenantDep = Annotated[str, Depends(get_tenant)]


async def require_signature(request: Request, tenant: TenantDep, context: ContextDep, settings: SettingsDep) -> None:
    """Seed 000's signature on destructive calls: fresh, valid for this key's secret, never seen before."""
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        raise ApiError(
            401,
            "signature_required",
            f"this call must be signed: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} (see docs/api-compat.md)",
        )
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > settings.signature_tolerance_seconds:
        raise ApiError(
            401,
            "signature_expired",
            f"{TIMESTAMP_HEADER} must be Unix seconds within {settings.signature_tolerance_seconds} s of now",
        )
    secret = request.state.api_key.get("signingSecret")
    if not secret:
        raise ApiError(403, "signing_not_enabled", "this API key has no signing secret and cannot sign calls")
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    body = await request.body()
    if not signature_matches(secret, signature, request.method, path, timestamp, body):
        raise ApiError(401, "invalid_signature", "the request signature does not match")
    # Within the tolerance window a signature could be sent again: remember it until it has expired.
    if not await context.nonces.use_once(f"sig:{signature}", ttl_seconds=2 * settings.signature_tolerance_seconds):
        raise ApiError(401, "signature_replayed", "this signature was already used; sign each request afresh")


SignedDep = Depends(require_signature)


def new_context_lock() -> asyncio.Lock:
    """The lock that guards lazy opening of the context."""
    return asyncio.Lock()
