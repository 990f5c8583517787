"""Webhooks: what a job can be subscribed to, what a delivery carries, and when a failed one is retried.

Pure: the dispatcher (functions/webhooks) does the I/O, this decides. Deliveries follow the Standard Webhooks
scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`); the body is `{type, timestamp, data}`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from events.envelope import public_time
from events.lifecycle import JOB_CANCELED, JOB_CHECKPOINT, JOB_FAILED, JOB_PROGRESS, JOB_STARTED, JOB_SUCCEEDED


class WebhookEvent(StrEnum):
    """What a job-creating request can subscribe its webhook to."""

    START = "start"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    CHECKPOINT = "checkpoint"  # trainings: an epoch's checkpoint is written


DEFAULT_EVENTS = (WebhookEvent.COMPLETED, WebhookEvent.FAILED, WebhookEvent.CANCELED)
# The lifecycle event type each webhook event answers to.
EVENT_FOR_TYPE = {
    JOB_STARTED: WebhookEvent.START,
    JOB_PROGRESS: WebhookEvent.PROGRESS,
    JOB_SUCCEEDED: WebhookEvent.COMPLETED,
    JOB_FAILED: WebhookEvent.FAILED,
    JOB_CANCELED: WebhookEvent.CANCELED,
    JOB_CHECKPOINT: WebhookEvent.CHECKPOINT,
}
MAX_URL_CHARS = 2048


class WebhookSubscription(BaseModel):
    """A job's `webhook` and the `webhookEvents` it wants (default: the terminal ones)."""

    model_config = ConfigDict(extra="forbid")

    url: AnyHttpUrl
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_EVENTS), min_length=1)

    @field_validator("url")
    @classmethod
    def _bounded(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if len(str(value)) > MAX_URL_CHARS:
            raise ValueError(f"webhook URL must be at most {MAX_URL_CHARS} characters")
        if value.username or value.password:
            raise ValueError("webhook URL must not carry credentials; deliveries are signed instead")
        return value

    @field_validator("events")
    @classmethod
    def _distinct(cls, value: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(value))


def delivery_id(job_id: str, event: WebhookEvent, sequence: str = "") -> str:
    """Deterministic `webhook-id`: a redelivered lifecycle event makes no second delivery, and a receiver
    can drop a retried one it already handled. `sequence` tells progress or checkpoint events apart."""
    return f"msg_{job_id}_{event.value}{'_' + sequence if sequence else ''}"


def payload(event: WebhookEvent, job_id: str, kind: str, status: str, occurred_at: datetime, **data: Any) -> dict:
    """The JSON body of a delivery."""
    return {
        "type": f"job.{event.value}",
        "timestamp": public_time(occurred_at),
        "data": {"jobId": job_id, "kind": kind, "status": status, **{k: v for k, v in data.items() if v is not None}},
    }


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits base x 2^(n-1), capped, scaled by 0.5..1 at random."""

    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 8
    # A receiver's Retry-After is honoured up to this (a longer one is a receiver asking to be given up on).
    max_retry_after: timedelta = timedelta(hours=6)


DEFAULT_POLICY = RetryPolicy()


class Verdict(StrEnum):
    """What a delivery attempt leads to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    GONE = "gone"  # 410: the receiver asked us to stop
    GAVE_UP = "gave_up"


@dataclass(frozen=True)
class Decision:
    """The verdict on an attempt, and when to try again for RETRY."""

    verdict: Verdict
    next_attempt_at: datetime | None = None


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header as a delay: seconds, or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(timedelta(0), when - now)


def decide(
    attempt: int,
    status: int | None,
    retry_after: str | None,
    now: datetime,
    policy: RetryPolicy = DEFAULT_POLICY,
    rng: random.Random | None = None,
) -> Decision:
    """The verdict on attempt number `attempt` (1-based) that got HTTP `status` (None: no response at all,
    such as a refused or timed-out connection)."""
    if status is not None and 200 <= status < 300:
        return Decision(Verdict.DELIVERED)
    if status == 410:
        return Decision(Verdict.GONE)
    if attempt >= policy.max_attempts:
        return Decision(Verdict.GAVE_UP)
    backoff = min(policy.cap, policy.base * 2 ** (attempt - 1))
    delay = backoff * (0.5 + 0.5 * (rng or random).random())
    asked = parse_retry_after(retry_after, now)
    if asked is not None:
        delay = max(delay, min(asked, policy.max_retry_after))
    return Decision(Verdict.RETRY, now + delay)
