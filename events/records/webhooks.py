"""Webhook signing secrets (per tenant) and deliveries (per job, with their persisted schedule)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.records.base import StoredRecord
from events.states import DeliveryStatus
from events.webhooks import Verdict, WebhookEvent

# Schedule times (`createdAt`, `nextAttemptAt`, attempts' `at`) are UTC with a fixed width and a `Z`, so
# strings sort as times do: the due-deliveries index compares them.
PENDING_PARTITION = "pending"


class WebhookSecretRecord(StoredRecord):
    """A tenant's signing secret and, during a rotation, its previous one. Times are epoch seconds."""

    tenantId: str = Field(min_length=1, description="The tenant (the table's key).")
    secret: str = Field(description="The current Standard Webhooks secret (`whsec_...`).")
    previous: str | None = Field(default=None, description="The secret before the last rotation.")
    previousUntil: int | None = Field(default=None, description="Until when `previous` still signs (epoch s).")
    createdAt: int = Field(description="When the first secret was made (epoch seconds).")
    rotatedAt: int | None = Field(default=None, description="When the secret was last rotated (epoch seconds).")


class DeliveryAttempt(BaseModel):
    """One attempt at delivering a webhook."""

    model_config = ConfigDict(extra="forbid")

    at: str = Field(description="When the attempt was made (schedule time).")
    statusCode: int | None = Field(default=None, description="The receiver's HTTP status (none if unreached).")
    error: str | None = Field(default=None, description="What went wrong (transport error or response text).")
    durationMs: float = Field(ge=0, description="How long the attempt took.")
    verdict: Verdict = Field(description="What the attempt led to.")


class DeliveryRecord(StoredRecord):
    """One webhook delivery of one job event, with its attempts and schedule."""

    jobId: str = Field(min_length=1, description="The job whose event it delivers (partition key).")
    deliveryId: str = Field(min_length=1, description="Deterministic per event and sequence (sort key).")
    tenantId: str = Field(min_length=1, description="The job's tenant (whose secret signs it).")
    event: WebhookEvent = Field(description="The webhook event delivered.")
    url: str = Field(description="Where it is delivered.")
    body: str = Field(description="The JSON body, exactly as signed and sent.")
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, description="Where the delivery stands.")
    createdAt: str = Field(description="When the delivery was recorded (schedule time).")
    nextAttemptAt: str | None = Field(default=None, description="Pending: when the next attempt is due.")
    due: str | None = Field(
        default=None, description="`pending` while an attempt is awaited (the due index's partition), else absent."
    )
    attempts: list[DeliveryAttempt] = Field(default_factory=list, description="Every attempt, oldest first.")
    scheduleStart: int = Field(
        default=0, ge=0, description="Attempts made before the current retry schedule began (a re-send resets it)."
    )
