"""The operator's credential: `Authorization: Bearer <LF_ADMIN_TOKEN>` on `/v1/admin/…` and `/metrics`.

It is a different secret from every tenant's key, compared in constant time; a tenant key is refused here as any
other wrong token is. Unset (no LF_ADMIN_TOKEN, no LF_ADMIN_TOKEN_SECRET_ARN), the operator API is off.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from functions.api.errors import ApiError

_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="lorafoundry-admin"'}


def admin_token_of(request: Request) -> str | None:
    """The operator token this app was configured with (resolved once at start-up), or None."""
    settings = request.app.state.settings
    token = getattr(request.app.state, "admin_token", None)
    if token is None and settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
    return token or None


async def require_operator(request: Request) -> None:
    """403 while the operator API is off; 401 without the operator's bearer token."""
    expected = admin_token_of(request)
    if expected is None:
        raise ApiError(403, "operator_api_disabled", "the operator API is off: set LF_ADMIN_TOKEN to turn it on")
    scheme, _, presented = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(
            401, "unauthorized", "the operator API needs 'Authorization: Bearer <admin token>'", headers=_UNAUTHORIZED
        )


OperatorDep = Annotated[None, Depends(require_operator)]
