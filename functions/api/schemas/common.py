"""Schemas shared by every route: error bodies, and field types several requests use."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from events.generation import MAX_PROMPT_CHARS


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("prompt must not be blank")
    return value


Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS), AfterValidator(_not_blank)]


class ErrorDetail(BaseModel):
    """What went wrong, which field caused it (if one did)."""

    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx body."""

    error: ErrorDetail


ERROR_RESPONSES = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "Not found (or another tenant's)"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid request"},
}
