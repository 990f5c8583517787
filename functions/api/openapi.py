"""Every status an operation can answer, declared in the served OpenAPI document, so generated clients
handle them. Each error has the one shape `{"error": {"code", "message", "field"}}`.

Two sources, merged: what a route's own code raises (`responses=error_responses(409, …)` on the route), and
what follows from the operation's shape and the middleware every request passes through (below).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from functions.api.schemas.common import ErrorResponse

ERROR_DESCRIPTIONS = {
    400: "Malformed request (a Content-Length, an Idempotency-Key or an empty image body)",
    401: "Missing or invalid API key (or request signature)",
    403: "Not allowed for this API key (or its tenant is suspended, or the operator API is off)",
    404: "Not found (or another tenant's)",
    409: "Conflicts with the resource's state (or an Idempotency-Key still in use)",
    413: "Request body or image too large",
    415: "Not a supported image format",
    422: "Invalid request, naming the field",
    429: "Over a quota or rate limit, which the message names; retry after Retry-After",
    503: "A backing service or the queue is unavailable; retry after Retry-After",
}
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that raises these statuses itself."""
    return {status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def implied_statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    """The statuses an operation answers by its shape alone: authentication, suspension, quotas and the backing
    services on every /v1 call, validation where it takes input, 404 for a path id, the body limit where it takes
    a body, and the Idempotency-Key checks on every POST."""
    if not path.startswith("/v1/"):
        return set()
    # A suspended tenant (403) or a quota (429) on every tenant call; the operator API is off (403) or open.
    statuses = {401, 403, 503} if path.startswith("/v1/admin/") else {401, 403, 429, 503}
    if operation.get("parameters") or operation.get("requestBody"):
        statuses.add(422)
    if "{" in path:
        statuses.add(404)
    if operation.get("requestBody") or method == "post":
        statuses |= {400, 413}  # BodySizeLimit: a bad Content-Length, a body over the path's limit
    if method == "post":
        statuses |= {400, 409, 422}  # IdempotencyMiddleware: a bad key, one in use, one reused for another body
    return statuses


def _error_response(status: int) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


def declare_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the implied statuses to every operation of `schema`; every 422 gets the error shape (FastAPI's
    default 422 schema describes a body this API never sends)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["ErrorResponse"] = error_schema
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(implied_statuses(method, path, operation)):
                responses.setdefault(str(status), _error_response(status))
            if "422" in responses:
                responses["422"] = _error_response(422)
            operation["responses"] = dict(sorted(responses.items()))
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the OpenAPI document with every operation's error statuses declared."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return declare_errors(generate())

    app.openapi = openapi  # type: ignore[method-assign]
