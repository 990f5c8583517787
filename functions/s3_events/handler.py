"""Lambda handler for S3 notifications delivered through SQS, with partial batch failure responses.

Configure the event source mapping with `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_plus

from events.storage_keys import parse_notification_key, parse_upload_key
from functions.lambda_runtime import AsyncLambda
from functions.s3_events.event_models import S3Notification, SqsEvent, SqsRecord
from functions.s3_events.markers import apply_marker
from functions.s3_events.uploads import apply_upload
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings

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
        ref = parse_notification_key(s3_record.s3.object.key)
        if ref is None:
            continue
        await apply_marker(context, unquote_plus(s3_record.s3.object.key), ref)


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
