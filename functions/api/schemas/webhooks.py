"""Webhook bodies: the tenant's signing secret, and a job's deliveries with their attempts."""

from __future__ import annotations

from pydantic import BaseModel, Field

from functions.api.schemas.common import ApiTime


class WebhookSecretOut(BaseModel):
    """`GET /v1/webhooks/secret`: verify deliveries with `secret` (Standard Webhooks, `whsec_…`)."""

    secret: str
    previousSecret: str | None = Field(
        default=None, description="After a rotation: deliveries are signed with both until previousValidUntil."
    )
    previousValidUntil: ApiTime | None = None


class DeliveryAttemptOut(BaseModel):
    """One POST of a delivery and what came of it."""

    at: ApiTime
    statusCode: int | None = Field(default=None, description="None: no HTTP answer (refused, timed out).")
    error: str | None = None
    durationMs: float
    verdict: str = Field(description="delivered, retry, gone (410), gave_up.")


class DeliveryOut(BaseModel):
    """A delivery of one job event to the job's webhook."""

    deliveryId: str = Field(description="The `webhook-id` header: the same on every attempt.")
    event: str
    url: str
    status: str = Field(description="pending (a retry is scheduled), delivered, gone, failed.")
    createdAt: ApiTime
    nextAttemptAt: ApiTime | None = None
    attempts: list[DeliveryAttemptOut]
