"""Webhooks in the API: subscriptions stored on jobs, signing secrets, deliveries shown and re-sent."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from urllib.parse import urlsplit

from events.records.jobs import Job
from events.records.webhooks import DeliveryRecord
from events.webhooks import WebhookSubscription
from functions.api.errors import ApiError
from functions.api.schemas.common import WebhookFields
from functions.api.schemas.webhooks import DeliveryAttemptOut, DeliveryOut, WebhookSecretOut
from functions.webhooks.dispatch import Dispatcher, utc_now
from infra.egress import is_forbidden
from infra.runtime import ServiceContext


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def webhook_record(context: ServiceContext, fields: WebhookFields) -> dict[str, WebhookSubscription]:
    """The job-record fields of a request's webhook (none without one), to be written with the job. An
    address that can never be called (a literal private, loopback or link-local IP, or `localhost`) is
    refused now rather than at delivery; names are checked where the connection is made, on every attempt
    and redirect."""
    subscription: WebhookSubscription | None = fields.subscription()
    if subscription is None:
        return {}
    host = urlsplit(str(subscription.url)).hostname or ""
    allowed = [ipaddress.ip_network(n, strict=False) for n in context.settings.egress_allowed_networks]
    address = _literal_address(host)
    if (address is not None and is_forbidden(address, allowed)) or (host == "localhost" and not allowed):
        raise ApiError(
            422,
            "webhook_url_forbidden",
            f"webhook host {host!r} is not a public address; webhooks are only sent to public addresses",
            field="webhook",
        )
    return {"webhook": subscription}


def render_delivery(delivery: DeliveryRecord) -> DeliveryOut:
    """A delivery and its attempts, newest attempt last."""
    return DeliveryOut(
        deliveryId=delivery.deliveryId,
        event=delivery.event.value,
        url=delivery.url,
        status=delivery.status.value,
        createdAt=delivery.createdAt,
        nextAttemptAt=delivery.nextAttemptAt if delivery.due else None,
        attempts=[DeliveryAttemptOut(**a.model_dump(mode="json")) for a in delivery.attempts],
    )


async def job_deliveries(context: ServiceContext, job: Job) -> list[DeliveryOut]:
    """The deliveries of a job that has a webhook (an empty list otherwise, without a read)."""
    if job.webhook is None:
        return []
    return [render_delivery(d) for d in await context.deliveries.list_for_job(job.jobId)]


async def resend(context: ServiceContext, job: Job, delivery_id: str) -> DeliveryOut:
    """Send a delivery again now, with a fresh retry schedule; the answer shows the new attempt."""
    delivery = await context.deliveries.get(job.jobId, delivery_id)
    if delivery is None:
        raise ApiError(404, "delivery_not_found", f"delivery {delivery_id!r} does not exist", field="deliveryId")
    rescheduled = await context.deliveries.reschedule(delivery, utc_now())
    await Dispatcher(context).attempt(rescheduled)
    found = await context.deliveries.get(job.jobId, delivery_id)
    assert found is not None
    return render_delivery(found)


async def signing_secret(context: ServiceContext, tenant_id: str, rotate: bool = False) -> WebhookSecretOut:
    """The tenant's signing secret (made on first use), rotated first if asked."""
    if rotate:
        record = await context.webhook_secrets.rotate(tenant_id, context.settings.webhook_secret_overlap_seconds)
    else:
        record = await context.webhook_secrets.current(tenant_id)
    return WebhookSecretOut(
        secret=record.secret,
        previousSecret=record.previous,
        previousValidUntil=(
            datetime.fromtimestamp(record.previousUntil, UTC) if record.previous and record.previousUntil else None
        ),
    )
