"""CloudEvents 1.0 envelope (JSON format) and its Kafka protocol binding.

Producers write structured mode (the whole envelope is the record value, content type
`application/cloudevents+json`); consumers accept structured and binary mode (`ce_*` headers), as the
Kafka binding allows both.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from events.validation import describe_errors

DataT = TypeVar("DataT", bound=BaseModel)

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "ai.lorafoundry."
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class EnvelopeError(ValueError):
    """A record that is not a valid CloudEvent of the expected type (goes to the DLQ, never retried)."""


def is_valid_traceparent(value: str | None) -> bool:
    """Whether a value is a well-formed W3C `traceparent` header."""
    return bool(value) and bool(_TRACEPARENT.match(value or ""))


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (every timestamp in the system is)."""
    return datetime.now(UTC)


def public_time(value: str | datetime) -> str:
    """A time as clients see it (API views, webhook bodies): UTC, to the millisecond, with `Z`
    (`2023-02-03T11:19:41.579Z`).

    Milliseconds, not seconds: a job on a small model, or a webhook's retries, can start and end within one
    second, and the views must still show them in order. The Scenario-style API writes this form; the Realm-style API's
    `2024-03-10T12:00:00Z` is the same RFC 3339 form without the fraction, which every parser reads. Fixed
    width, so the strings sort as the times do. Stored records keep `isoformat()` (their ordering queries
    compare those strings), so this applies on the way out only.
    """
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # every stored time is UTC
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 envelope; `subject` is the job id, `tenantid` the owning tenant."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    specversion: str = Field(default="1.0", pattern=r"^1\.0$")
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=256)
    source: str = Field(default="/lorafoundry", min_length=1, max_length=512)
    type: str = Field(min_length=1, max_length=256)
    subject: str = Field(min_length=1, max_length=128)
    time: AwareDatetime = Field(default_factory=utcnow)
    datacontenttype: str = "application/json"
    tenantid: str = Field(min_length=1, max_length=128, description="Extension: the tenant that owns the job.")
    traceparent: str | None = Field(default=None, description="Extension: W3C trace context.")
    data: DataT

    @field_validator("traceparent")
    @classmethod
    def _valid_traceparent(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_traceparent(value):
            raise ValueError("traceparent must be a W3C trace context header value")
        return value

    def to_json_bytes(self) -> bytes:
        """Structured-mode JSON encoding, as written to Kafka."""
        return self.model_dump_json(exclude_none=True).encode()


def kafka_headers() -> list[tuple[str, bytes]]:
    """Headers sent with every structured-mode record."""
    return [("content-type", STRUCTURED_CONTENT_TYPE.encode())]


def decode_envelope(value: bytes | None, headers: list[tuple[str, bytes]] | tuple = ()) -> dict[str, Any]:
    """Turn a Kafka record (structured or binary mode) into a plain envelope dict.

    Raises EnvelopeError for anything that is not a CloudEvent; validation of `data` is the caller's.
    """
    header_map = {k.lower(): v for k, v in headers or ()}
    if "ce_specversion" in header_map:
        envelope: dict[str, Any] = {
            k[3:]: v.decode("utf-8", "replace") for k, v in header_map.items() if k.startswith("ce_")
        }
        try:
            envelope["data"] = json.loads(value or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeError(f"binary-mode data is not JSON: {exc}") from exc
        return envelope
    if not value:
        raise EnvelopeError("empty record value")
    try:
        envelope = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"record value is not JSON: {exc}") from exc
    if not isinstance(envelope, dict):
        raise EnvelopeError("record value is not a JSON object")
    return envelope


def parse_event(envelope: dict[str, Any], model: type[CloudEvent[Any]], expected_type: str) -> CloudEvent[Any]:
    """Validate an envelope dict against a concrete event model, raising EnvelopeError with the reason."""
    if envelope.get("type") != expected_type:
        raise EnvelopeError(f"unexpected event type {envelope.get('type')!r}, expected {expected_type!r}")
    try:
        return model.model_validate(envelope)
    except ValidationError as exc:
        raise EnvelopeError(f"invalid {expected_type}: {describe_errors(exc)}") from exc
