"""Webhook dispatch: lifecycle events become deliveries, deliveries become signed POSTs on a persisted schedule.

Every step is safe to repeat. A delivery's id is derived from its job and event, so a redelivered lifecycle
event finds it recorded; an attempt is taken with a conditional write before it is sent; its outcome and the
next attempt's time are written after. The schedule lives in DynamoDB, so a dispatcher that restarts (or a
second one) carries on where the first stopped.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from standardwebhooks import Webhook

from events.lifecycle import JobLifecycle
from events.records.webhooks import DeliveryAttempt, DeliveryRecord
from events.states import DeliveryStatus
from events.usecases.ports import AnyJob
from events.webhooks import (
    DEFAULT_POLICY,
    EVENT_FOR_TYPE,
    Decision,
    RetryPolicy,
    Verdict,
    WebhookEvent,
    decide,
    delivery_id,
    payload,
)
from infra.egress import EgressRefused, guarded_client
from infra.metrics import WEBHOOK_DELIVERIES
from infra.repositories.webhooks import schedule_time
from infra.runtime import ServiceContext
from infra.tracing import span

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
USER_AGENT = "LoRA-Foundry-Webhooks/1"
# What a delivery's record keeps of a receiver's answer.
_MAX_RESPONSE_CHARS = 500
# Where a delivery stands after an attempt with each verdict.
_STATUS_AFTER = {
    Verdict.DELIVERED: DeliveryStatus.DELIVERED,
    Verdict.GONE: DeliveryStatus.GONE,
    Verdict.GAVE_UP: DeliveryStatus.FAILED,
    Verdict.RETRY: DeliveryStatus.PENDING,
}


@dataclass(frozen=True)
class Outcome:
    """What one POST got: an HTTP status, or an error without one (`refused`: never to be retried)."""

    status: int | None
    retry_after: str | None
    error: str | None
    elapsed_ms: float
    refused: bool = False


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def signature_headers(delivery_id_: str, timestamp: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation the body is signed with both secrets (space-separated)."""
    signatures = " ".join(Webhook(secret).sign(delivery_id_, timestamp, body) for secret in secrets)
    return {
        "webhook-id": delivery_id_,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
    }


# The `outcome` label of WEBHOOK_DELIVERIES for each verdict.
_OUTCOME_LABEL = {
    Verdict.DELIVERED: "delivered",
    Verdict.RETRY: "retry",
    Verdict.GONE: "gone",
    Verdict.GAVE_UP: "failed",
}


def _span_attributes(delivery: DeliveryRecord, number: int) -> dict[str, Any]:
    # The host only, not the URL: a receiver's URL may carry a token of its own in its path or query.
    return {
        "http.request.method": "POST",
        "server.address": urlsplit(delivery.url).hostname,
        "lorafoundry.job_id": delivery.jobId,
        "lorafoundry.tenant": delivery.tenantId,
        "lorafoundry.delivery_id": delivery.deliveryId,
        "lorafoundry.webhook_event": str(delivery.event),
        "lorafoundry.attempt": number,
    }


def _record_outcome(current: Span, outcome: Outcome, verdict: Verdict) -> None:
    """An attempt's outcome on its span and in the delivery counter."""
    if outcome.status is not None:
        current.set_attribute("http.response.status_code", outcome.status)
    current.set_attribute("lorafoundry.verdict", str(verdict))
    if verdict is not Verdict.DELIVERED:
        current.set_status(Status(StatusCode.ERROR, outcome.error[:100] if outcome.error else str(outcome.status)))
    WEBHOOK_DELIVERIES.labels(outcome=_OUTCOME_LABEL[verdict]).inc()


class Dispatcher:
    """Records and sends one process's deliveries. `clock` and `rng` are injectable for tests."""

    def __init__(
        self,
        context: ServiceContext,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.context = context
        self.clock = clock
        self.rng = rng or random.Random()
        self.policy = policy

    async def on_lifecycle(self, event: JobLifecycle) -> None:
        """Record (once) the delivery a lifecycle event calls for, and attempt it at once."""
        data = event.data
        webhook_event = EVENT_FOR_TYPE.get(event.type)
        if webhook_event is None:
            return
        job = await self.context.jobs.get(data.jobId)
        if job is None or job.webhook is None or job.tenantId != event.tenantid:
            return
        if webhook_event not in job.webhook.events:
            return
        body = payload(
            webhook_event,
            data.jobId,
            data.kind,
            data.status,
            data.occurredAt,
            error=data.error.model_dump() if data.error else None,
            progress=data.progress.model_dump() if data.progress else None,
            epoch=data.epoch,
        )
        sequence = data.epoch or (str(data.progress.step) if data.progress else "")
        await self.record_and_send(job, webhook_event, body, sequence)

    async def record_and_send(self, job: AnyJob, event: WebhookEvent, body: dict[str, Any], sequence: str = "") -> None:
        """Record a delivery of `body` for `job` (once per event and sequence) and attempt it if due."""
        if job.webhook is None:
            return  # nothing subscribed
        now = self.clock()
        record = DeliveryRecord(
            jobId=job.jobId,
            deliveryId=delivery_id(job.jobId, event, sequence),
            tenantId=job.tenantId,
            event=event,
            url=str(job.webhook.url),
            body=json.dumps(body, separators=(",", ":")),
            status=DeliveryStatus.PENDING,
            createdAt=schedule_time(now),
            nextAttemptAt=schedule_time(now),
        )
        await self.context.deliveries.create(record)
        found = await self.context.deliveries.get(record.jobId, record.deliveryId)
        if found is not None and found.due and found.nextAttemptAt and found.nextAttemptAt <= schedule_time(now):
            await self.attempt(found)

    async def sweep(self, limit: int = 100) -> int:
        """Attempt every delivery that is due; returns how many were attempted."""
        attempted = 0
        for delivery in await self.context.deliveries.due(self.clock(), limit):
            attempted += await self.attempt(delivery)
        return attempted

    async def attempt(self, delivery: DeliveryRecord) -> bool:
        """Take, send and record one attempt of `delivery`; False if another dispatcher holds it."""
        now = self.clock()
        lease = now + timedelta(seconds=self.context.settings.webhook_lease_seconds)
        if not await self.context.deliveries.take(delivery, lease):
            return False
        number = len(delivery.attempts) - delivery.scheduleStart + 1
        with span("webhook delivery", kind=SpanKind.CLIENT, attributes=_span_attributes(delivery, number)) as current:
            outcome = await self._send(delivery, now)
            decision = decide(number, outcome.status, outcome.retry_after, self.clock(), self.policy, self.rng)
            if outcome.refused:
                # A forbidden address stays forbidden: retrying would only knock on the same door.
                decision = Decision(Verdict.GAVE_UP)
            _record_outcome(current, outcome, decision.verdict)
        attempt = DeliveryAttempt(
            at=schedule_time(now),
            statusCode=outcome.status,
            error=outcome.error,
            durationMs=round(outcome.elapsed_ms, 1),
            verdict=decision.verdict,
        )
        final_status = _STATUS_AFTER[decision.verdict]
        await self.context.deliveries.record_attempt(delivery, attempt, final_status, decision.next_attempt_at)
        log.info(
            "webhook %s -> %s: %s (%s)",
            delivery.deliveryId,
            delivery.url,
            decision.verdict,
            outcome.status or outcome.error,
        )
        return True

    async def _send(self, delivery: DeliveryRecord, now: datetime) -> Outcome:
        settings = self.context.settings
        secrets = await self.context.webhook_secrets.signing_secrets(delivery.tenantId)
        headers = {
            **signature_headers(delivery.deliveryId, now, delivery.body, secrets),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        started = time.perf_counter()

        def elapsed() -> float:
            return (time.perf_counter() - started) * 1000

        try:
            async with guarded_client(settings.egress_allowed_networks, settings.webhook_timeout_seconds) as client:
                response = await client.post(delivery.url, content=delivery.body.encode(), headers=headers)
        except EgressRefused as exc:
            return Outcome(None, None, f"refused: {exc}", elapsed(), refused=True)
        except httpx.HTTPError as exc:
            return Outcome(None, None, f"{type(exc).__name__}: {exc}"[:_MAX_RESPONSE_CHARS], elapsed())
        error = None if response.is_success else (response.text[:_MAX_RESPONSE_CHARS] or None)
        return Outcome(response.status_code, response.headers.get("retry-after"), error, elapsed())
