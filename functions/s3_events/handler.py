"""Lambda handler for S3 notifications delivered through SQS, with partial batch failure responses.

Configure the event source mapping with `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from events.storage_keys import (
    JobMarkerRef,
    parse_adapter_upload_key,
    parse_captions_key,
    parse_notification_key,
    parse_upload_key,
)
from functions.lambda_runtime import AsyncLambda
from functions.s3_events.adapter_uploads import apply_adapter_upload
from functions.s3_events.captions import apply_captions
from functions.s3_events.event_models import S3Notification, SqsEvent, SqsRecord
from functions.s3_events.markers import apply_marker
from functions.s3_events.uploads import apply_upload
from infra.logs import job_log_context
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings
from infra.tracing import span

log = logging.getLogger(__name__)


async def process_record(context: ServiceContext, record: SqsRecord) -> None:
    """Apply every marker in one SQS message; raises if any must be retried."""
    notification = S3Notification.model_validate_json(record.body)
    if notification.is_test_event:
        return
    for s3_record in notification.Records:
        if not s3_record.eventName.startswith("ObjectCreated"):
            continue
        if s3_record.s3.bucket.name != context.settings.bucket:
            log.warning("notification for foreign bucket %s ignored", s3_record.s3.bucket.name)
            continue
        if upload := parse_upload_key(s3_record.s3.object.key):
            await apply_upload(context, upload)
            continue
        if adapter_upload := parse_adapter_upload_key(s3_record.s3.object.key):
            await apply_adapter_upload(context, adapter_upload)
            continue
        if training_id := parse_captions_key(s3_record.s3.object.key):
            with job_log_context(training_id, None):
                await apply_captions(context, unquote_plus(s3_record.s3.object.key), training_id)
            continue
        ref = parse_notification_key(s3_record.s3.object.key)
        if ref is None:
            continue
        await apply_traced_marker(context, unquote_plus(s3_record.s3.object.key), ref)


async def apply_traced_marker(context: ServiceContext, key: str, ref: JobMarkerRef) -> None:
    """Apply one marker inside a span of its job's trace, with the job's log context.

    The job record is read first for its `traceparent` (one GetItem per marker: S3 notifications carry no object
    metadata, and the marker's body is read only inside `apply_marker`). A marker of an unknown job still gets a
    span, in a trace of its own.
    """
    job = await context.jobs.get(ref.job_id)
    tenant = job.tenantId if job is not None else None
    attributes = {
        "lorafoundry.job_id": ref.job_id,
        "lorafoundry.tenant": tenant,
        "lorafoundry.marker": ref.marker.value if ref.marker else None,
        "lorafoundry.epoch": ref.epoch,
        "aws.s3.bucket": context.settings.bucket,
        "aws.s3.key": key,
    }
    with (
        job_log_context(ref.job_id, tenant),
        span("s3-events marker", traceparent=job.traceparent if job else None, attributes=attributes) as current,
    ):
        outcome = await apply_marker(context, key, ref)
        if outcome is not None:
            current.set_attribute("lorafoundry.outcome", str(outcome))


async def process_sqs_event(context: ServiceContext, event: dict[str, Any]) -> dict[str, Any]:
    """Process a batch; the response names the messages to retry (SQS partial batch response)."""
    batch = SqsEvent.model_validate(event)
    failures: list[dict[str, str]] = []
    for record in batch.Records:
        try:
            await process_record(context, record)
        except Exception:
            log.exception("message %s failed; it will be retried", record.messageId)
            failures.append({"itemIdentifier": record.messageId})
    return {"batchItemFailures": failures}


class S3EventsLambda(AsyncLambda):
    """The S3-events function: SQS batches of S3 notifications in, partial batch responses out."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_sqs_event, settings_factory)


handler = S3EventsLambda()
