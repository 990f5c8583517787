"""Pydantic's validation errors as the service words them for clients, the DLQ and logs: one place, so that
every API dialect and the envelope show the same message for the same mistake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

# Pydantic puts this before the message of a ValueError raised in a validator; the message alone is the
# validator's own sentence, written for the client.
_VALUE_ERROR_PREFIX = "Value error, "


def error_message(error: Mapping[str, Any], default: str = "invalid value") -> str:
    """One error's message (from `ValidationError.errors()`), without pydantic's "Value error, " prefix."""
    return str(error.get("msg", default)).removeprefix(_VALUE_ERROR_PREFIX)


def error_path(error: Mapping[str, Any]) -> str:
    """Where one error is, as dotted field names (`parameters.batchSize`, `data.0.url`); "" for the root."""
    return ".".join(str(part) for part in error.get("loc", ()))


def describe_errors(exc: ValidationError) -> str:
    """Every error of a validation, `path: message` each, separated by "; " (the root shown as "(root)")."""
    return "; ".join(f"{error_path(error) or '(root)'}: {error_message(error)}" for error in exc.errors())
