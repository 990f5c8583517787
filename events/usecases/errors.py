"""What a use case refuses, in words any entry point can render: a stable code, a message, the request
field at fault and optional details. The API maps each kind to an HTTP status in one table
(`functions/api/errors.py`); nothing here knows HTTP."""

from __future__ import annotations

from typing import Any


class UseCaseError(Exception):
    """A refusal the caller caused or must know about."""

    def __init__(
        self, code: str, message: str, field: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        # More members of the error object, for what a client can act on (e.g. the valid choices).
        self.details = details or {}


class NotFound(UseCaseError):
    """The thing asked for does not exist (or is not the caller's, which looks the same)."""


class Conflict(UseCaseError):
    """The thing exists but its current state does not allow the request."""


class Invalid(UseCaseError):
    """The request itself is wrong: a value, a combination, a limit."""


class Forbidden(UseCaseError):
    """The caller may not do this."""


class RetryLater(UseCaseError):
    """A refusal the same request may pass after `retry_after_s` seconds (the `Retry-After` it is answered with)."""

    default_retry_after_s = 5

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(code, message, field, details)
        self.retry_after_s = self.default_retry_after_s if retry_after_s is None else retry_after_s


class Unavailable(RetryLater):
    """A backing service did not answer; the same request may succeed after `retry_after_s` seconds."""


class QuotaExceeded(RetryLater):
    """The caller is over one of its limits (a quota or a rate limit); the same request may succeed after
    `retry_after_s` seconds, or once the caller has freed what the limit counts (`details` says which limit,
    its value and the current count)."""

    default_retry_after_s = 1


__all__ = ["Conflict", "Forbidden", "Invalid", "NotFound", "QuotaExceeded", "Unavailable", "UseCaseError"]
