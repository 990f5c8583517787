"""One error shape for every failure: `{"error": {"code", "message", "field"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from events.usecases.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    QuotaExceeded,
    RetryLater,
    Unavailable,
    UseCaseError,
)
from events.validation import error_message
from infra.metrics import QUOTA_REFUSALS

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client caused or must know about, rendered in the common shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers
        # More members of the error object, for what a client can act on (e.g. the valid choices).
        self.extra = extra or {}


# The HTTP status of each kind of use-case refusal: the one place the API decides it.
USE_CASE_STATUSES: dict[type[UseCaseError], int] = {
    Invalid: 422,
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    Unavailable: 503,
    QuotaExceeded: 429,
}


def use_case_status(kind: type[UseCaseError]) -> int:
    """The HTTP status a use-case error of `kind` is answered with."""
    for cls in kind.__mro__:
        if cls in USE_CASE_STATUSES:
            return USE_CASE_STATUSES[cls]
    return 500


def api_error_of(exc: UseCaseError) -> ApiError:
    """The API's rendering of a use-case refusal: its status from the table, `Retry-After` when it says."""
    retry_after = exc.retry_after_s if isinstance(exc, RetryLater) else None
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return ApiError(use_case_status(type(exc)), exc.code, exc.message, exc.field, headers, dict(exc.details))


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _field_of(loc: tuple[Any, ...]) -> str:
    # loc is ("body", "width") or ("query", "limit"); a bare ("body",) means the body itself.
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path", "header") else list(map(str, loc))
    return ".".join(parts) or str(loc[0] if loc else "body")


def _message_of(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        return f"request body is not valid JSON: {error.get('ctx', {}).get('error', 'malformed')}"
    if error.get("type") == "missing":
        return "field required"
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    if error.get("type") == "model_attributes_type":
        return "request body must be a JSON object"
    return error_message(error)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, expected or not, in the common shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = error_body(exc.code, exc.message, exc.field, **exc.extra)
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(UseCaseError)
    async def _use_case_error(request: Request, exc: UseCaseError) -> JSONResponse:
        if isinstance(exc, QuotaExceeded):
            QUOTA_REFUSALS.labels(limit=str(exc.details.get("quota", exc.code))).inc()
        return await _api_error(request, api_error_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        details = [
            {
                # A JSON syntax error's loc ends in a character position, not a field: it is the body's fault.
                "field": "body" if e.get("type") == "json_invalid" else _field_of(tuple(e.get("loc", ()))),
                "message": _message_of(e),
            }
            for e in errors
        ]
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        return JSONResponse(
            error_body("validation_error", f"{first['field']}: {first['message']}", first["field"], details=details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("internal_error", "an unexpected error occurred"), status_code=500)
