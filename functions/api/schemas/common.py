"""Schemas shared by every route: error bodies, and field types several requests use."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from events.envelope import public_time
from events.generation import MAX_PROMPT_CHARS
from events.validation import error_message
from events.webhooks import MAX_URL_CHARS, WebhookEvent, WebhookSubscription

# Every timestamp of every view has this type, so none can slip out in another form.
ApiTime = Annotated[
    str,
    BeforeValidator(public_time),
    Field(json_schema_extra={"format": "date-time", "example": "2023-02-03T11:19:41.579Z"}),
]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("prompt must not be blank")
    return value


Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS), AfterValidator(_not_blank)]


class WebhookSubscriptionOut(BaseModel):
    """A job's webhook, as its request set it."""

    url: str
    events: list[str]


class WebhookFields(BaseModel):
    """`webhook` and `webhookEvents`, accepted by every job-creating request."""

    webhook: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL called with a signed POST (Standard Webhooks) when the job reaches the "
        "subscribed events. Only public addresses are called, checked at connect time and on every redirect.",
    )
    webhookEvents: list[WebhookEvent] | None = Field(
        default=None,
        description="start, progress, completed, failed, canceled, checkpoint (trainings). Default: completed, "
        "failed, canceled. In a form: repeat the field or separate with commas.",
    )

    @field_validator("webhookEvents", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [part.strip() for v in value for part in v.split(",") if part.strip()]
        return value

    @field_validator("webhook")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                WebhookSubscription(url=value)  # type: ignore[arg-type]
            except ValidationError as exc:
                raise ValueError(error_message(exc.errors()[0])) from None
        return value

    @model_validator(mode="after")
    def _events_need_a_url(self) -> WebhookFields:
        if self.webhookEvents is not None and self.webhook is None:
            raise ValueError("webhookEvents needs a webhook URL")
        return self

    def subscription(self) -> WebhookSubscription | None:
        """The webhook subscription the request asked for, if any."""
        if self.webhook is None:
            return None
        fields: dict[str, object] = {"url": self.webhook}
        if self.webhookEvents:
            fields["events"] = self.webhookEvents
        return WebhookSubscription.model_validate(fields)


class ErrorDetail(BaseModel):
    """What went wrong, which field caused it (if one did)."""

    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx body."""

    error: ErrorDetail


# Every /v1 route's: the API key is checked and the backing services are reached on every call. The rest is
# declared by functions.api.openapi (from each operation's shape) and by each route (what its code raises).
ERROR_RESPONSES = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key (or request signature)"},
    503: {"model": ErrorResponse, "description": "A backing service is unavailable; retry after Retry-After"},
}
