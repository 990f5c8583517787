"""The operator's credential: `Authorization: Bearer <LF_ADMIN_TOKEN>` on `/v1/admin/…` and `/metrics`.

It is a different secret from every tenant's key, compared in constant time; a tenant key is refused here as any
other wrong token is. On AWS the deployment hands the API a secret's ARN (LF_ADMIN_TOKEN_SECRET_ARN), read from
Secrets Manager once, on the first operator call, into `app.state.admin_token`. Unset (no LF_ADMIN_TOKEN, no
LF_ADMIN_TOKEN_SECRET_ARN), the operator API is off.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Annotated, Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, Request

from functions.api.errors import ApiError
from infra.aws import create_client
from infra.settings import Settings

log = logging.getLogger(__name__)

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="lorafoundry-admin"'}
_RESOLVE_LOCK = asyncio.Lock()


def admin_token_of(request: Request) -> str | None:
    """The operator token this app was configured with (or resolved from its secret), or None."""
    settings = request.app.state.settings
    token = getattr(request.app.state, "admin_token", None)
    if token is None and settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
    return token or None


async def read_admin_token_secret(settings: Settings, secret_arn: str) -> str:
    """The operator token stored in Secrets Manager under `secret_arn` (its SecretString, whitespace trimmed)."""
    async with create_client(settings, "secretsmanager") as secrets:
        secret = await secrets.get_secret_value(SecretId=secret_arn)
    return (secret.get("SecretString") or "").strip()


async def _resolved_admin_token(request: Request) -> str | None:
    token = admin_token_of(request)
    settings = request.app.state.settings
    if token is not None or not settings.admin_token_secret_arn:
        return token
    state: Any = request.app.state
    async with _RESOLVE_LOCK:
        if getattr(state, "admin_token", None) is None:
            try:
                state.admin_token = await read_admin_token_secret(settings, settings.admin_token_secret_arn)
            except (ClientError, BotoCoreError) as exc:
                log.error("cannot read the operator token's secret: %s", type(exc).__name__)
                raise ApiError(
                    503,
                    "service_unavailable",
                    "the operator token's secret cannot be read; try again shortly",
                    headers={"Retry-After": "5"},
                ) from exc
    return state.admin_token or None


async def require_operator(request: Request) -> None:
    """403 while the operator API is off; 401 without the operator's bearer token."""
    expected = await _resolved_admin_token(request)
    if expected is None:
        raise ApiError(403, "operator_api_disabled", "the operator API is off: set LF_ADMIN_TOKEN to turn it on")
    scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(
            401, "unauthorized", "the operator API needs 'Authorization: Bearer <admin token>'", headers=_UNAUTHORIZED
        )


OperatorDep = Annotated[None, Depends(require_operator)]
