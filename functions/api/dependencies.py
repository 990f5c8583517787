"""FastAPI dependencies, as `Annotated` aliases: settings, the service context, the caller's tenant, the trace
context, and the path parameters that name a resource."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import Depends, Header, Path, Request

from events.envelope import is_valid_traceparent
from events.records.api_keys import ApiKeyRecord
from functions.api.errors import ApiError
from functions.api.request_tracing import request_traceparent
from functions.api.services.quotas import check_request_allowed
from infra.repositories.api_keys import InvalidCredentials, parse_authorization
from infra.runtime import ServiceContext
from infra.settings import Settings
from infra.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_matches

log = logging.getLogger(__name__)


# Every id the service issues (and every id a client may choose) is URL-safe: anything else is no resource.
_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
IdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=_ID_PATTERN)]
# The resources' own names for it, so that a route's signature says which id it takes.
ModelIdPath = JobIdPath = TrainingIdPath = PredictionIdPath = PortraitIdPath = DataIdPath = UploadKeyPath = IdPath
# A webhook delivery's id is its job's id, the event and a sequence: longer than the ids it is made of.
DeliveryIdPath = Annotated[str, Path(min_length=1, max_length=160, pattern=_ID_PATTERN)]


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_context(request: Request) -> ServiceContext:
    """The process's clients, opened on first use (on Lambda, once per warm container), with the base models
    registered at run time renewed (through a cache of a few seconds)."""
    context = await open_context(request.app.state)
    await context.refresh_base_models()
    return context


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


async def valid_traceparent(traceparent: Annotated[str | None, Header()] = None) -> str | None:
    """The trace context a job created by this request records: the request's SERVER span's (a child of the
    request's W3C `traceparent` header when that one is well formed; a malformed one is dropped, not refused, as
    W3C trace context asks of a receiver, and the request's span starts a trace of its own). Without a tracer
    (no span), the well-formed header itself, or None."""
    return request_traceparent() or (traceparent if is_valid_traceparent(traceparent) else None)


TraceparentDep = Annotated[str | None, Depends(valid_traceparent)]

# Both schemes we accept, Bearer first (what our own documents show).
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer, Basic realm="lorafoundry"'}


async def authenticate(request: Request, context: ContextDep) -> ApiKeyRecord:
    """The active API key record of the request's `Authorization` (Bearer key, or Basic key:secret); 401
    otherwise. Kept on `request.state` for the checks of destructive calls."""
    try:
        credentials = parse_authorization(request.headers.get("authorization"))
    except InvalidCredentials as exc:
        raise ApiError(401, "unauthorized", str(exc), headers=_UNAUTHORIZED) from exc
    record = await context.api_keys.authenticate(credentials)
    if record is None:
        message = "invalid API key or signing secret" if credentials.secret is not None else "invalid API key"
        raise ApiError(401, "unauthorized", message, headers=_UNAUTHORIZED)
    request.state.api_key = record
    request.state.credentials = credentials
    await check_request_allowed(context, record)
    return record


async def get_tenant(record: Annotated[ApiKeyRecord, Depends(authenticate)]) -> str:
    """The caller's tenant; 401 without valid credentials."""
    return record.tenantId


TenantDep = Annotated[str, Depends(get_tenant)]


async def require_signature(request: Request, tenant: TenantDep, context: ContextDep, settings: SettingsDep) -> None:
    """Proof of the key's signing secret on `DELETE /v1/models/{id}`, as the key's policy asks.

    - A request that carries a signature (the Realm-style API) has it checked, whatever the policy: fresh, valid for
      this key's secret, never seen before.
    - Basic credentials with the secret (the Scenario-style API), already checked by `authenticate`, are proof enough.
    - Otherwise the key's `requireSignedDeletes` decides: absent or true (as every key before the policy)
      refuses the call; false (keys issued to custom-models clients) lets the key alone delete.
    See docs/api-compat.md, "Deleting a model".
    """
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    signature = request.headers.get(SIGNATURE_HEADER)
    record: ApiKeyRecord = request.state.api_key
    if not timestamp and not signature:
        if request.state.credentials.secret is not None or not record.requireSignedDeletes:
            return
        raise ApiError(
            401,
            "signature_required",
            f"this call must be signed: send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}, or authenticate with "
            "'Basic base64(<api key>:<signing secret>)' (see docs/api-compat.md)",
        )
    if not timestamp or not signature:
        raise ApiError(401, "signature_required", f"a signed call sends both {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > settings.signature_tolerance_seconds:
        raise ApiError(
            401,
            "signature_expired",
            f"{TIMESTAMP_HEADER} must be Unix seconds within {settings.signature_tolerance_seconds} s of now",
        )
    secret = record.signingSecret
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
