"""functions.s3_events fed real notifications: objects written to the moto server, received from SQS,
wrapped as Lambda builds an SQS event, and handed to the Lambda handler."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from urllib.parse import unquote_plus

import pytest

from events.envelope import utcnow
from events.lifecycle import JobError
from events.markers import GenerationResult, JobFailure, StageTimings
from events.records.jobs import GenerationJob
from events.states import GenerationStatus, JobKind
from events.storage_keys import Marker, job_marker_key
from functions.s3_events.handler import S3EventsLambda
from infra.bootstrap import bootstrap
from infra.local.sqs_poller import lambda_sqs_event
from infra.runtime import ServiceContext
from tests.conftest import make_settings
from tests.support import generation_request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def isolated(moto_endpoint, broker) -> AsyncIterator[tuple]:
    """Resources of their own (no poller drains this queue), and the Lambda under test."""
    settings = make_settings(moto_endpoint, broker, f"lfs-{secrets.token_hex(3)}")
    await bootstrap(settings)
    context = await ServiceContext(settings).open()
    handler = S3EventsLambda(lambda: settings)
    queue_url = (await context.clients.sqs.get_queue_url(QueueName=settings.notifications_queue))["QueueUrl"]
    queue_arn = (await context.clients.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]))[
        "Attributes"
    ]["QueueArn"]
    try:
        yield settings, context, handler, queue_url, queue_arn
    finally:
        await asyncio.to_thread(handler.close)
        await context.close()


async def _receive(context, queue_url: str, expected: int) -> list[dict]:
    """Receive exactly the messages moto sent for what the test wrote (delivery is synchronous in moto)."""
    messages: list[dict] = []
    for _ in range(20):
        response = await context.clients.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        batch = response.get("Messages", [])
        for m in batch:
            await context.clients.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        messages.extend(m for m in batch if "s3:TestEvent" not in m["Body"])
        if len(messages) >= expected:
            break
    assert len(messages) == expected, messages
    return messages


async def _new_job(context, tenant: str = "tenant-a") -> GenerationJob:
    job_id = f"job_{secrets.token_hex(12)}"
    request = generation_request(job_id, outputFormat="png")
    await context.jobs.create(GenerationJob(jobId=job_id, tenantId=tenant, modelId="tiny-sd", request=request))
    claimed = await context.jobs.claim(job_id, "worker-test", 60, kind=JobKind.GENERATION)
    assert claimed is not None
    return claimed


def _result(job_id: str) -> GenerationResult:
    now = utcnow()
    return GenerationResult(
        jobId=job_id,
        outputs=[f"jobs/{job_id}/outputs/0.png"],
        width=64,
        height=64,
        seed=1,
        numInferenceSteps=2,
        guidanceScale=7.5,
        baseModel="tiny-sd",
        outputFormat="png",
        workerId="worker-test",
        attempt=1,
        startedAt=now,
        completedAt=now,
        timings=StageTimings(loadMs=0, computeMs=5, uploadMs=1),
    )


def _failure(job_id: str) -> JobFailure:
    return JobFailure(
        jobId=job_id,
        error=JobError(code="generation_failed", message="boom"),
        workerId="worker-test",
        attempt=1,
        failedAt=utcnow(),
    )


async def _invoke(handler: S3EventsLambda, event: dict) -> dict:
    # The handler is synchronous with its own loop, as on Lambda: run it off this test's loop.
    return await asyncio.to_thread(handler, event, None)


async def test_result_marker_completes_the_job(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    job = await _new_job(context)
    await context.store.put_model(job_marker_key(job.jobId, Marker.RESULT), _result(job.jobId))
    messages = await _receive(context, queue_url, 1)
    body = json.loads(messages[0]["Body"])
    # Keys arrive URL-encoded (moto encodes even the slashes, S3 does not): the handler decodes them.
    assert unquote_plus(body["Records"][0]["s3"]["object"]["key"]) == f"jobs/{job.jobId}/result.json"

    response = await _invoke(handler, lambda_sqs_event(messages, queue_arn, settings.aws_region))
    assert response == {"batchItemFailures": []}
    stored = await context.jobs.get_as(job.jobId, GenerationJob)
    assert stored is not None and stored.result is not None
    assert stored.status == GenerationStatus.COMPLETED
    assert stored.outputs == [f"jobs/{job.jobId}/outputs/0.png"]
    assert stored.result.timings.computeMs == 5
    assert stored.publishedEvents == {"completed"}


async def test_duplicate_and_out_of_order_notifications_change_nothing(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    job = await _new_job(context)
    await context.store.put_model(job_marker_key(job.jobId, Marker.RESULT), _result(job.jobId))
    result_event = lambda_sqs_event(await _receive(context, queue_url, 1), queue_arn, settings.aws_region)
    await _invoke(handler, result_event)
    completed = await context.jobs.get(job.jobId)

    # The same notification again (SQS delivers at least once).
    assert await _invoke(handler, result_event) == {"batchItemFailures": []}
    # A failure marker arriving after the result (reordered, or a stale worker).
    await context.store.put_model(job_marker_key(job.jobId, Marker.FAILED), _failure(job.jobId))
    failed_event = lambda_sqs_event(await _receive(context, queue_url, 1), queue_arn, settings.aws_region)
    assert await _invoke(handler, failed_event) == {"batchItemFailures": []}

    after = await context.jobs.get(job.jobId)
    assert after == completed


async def test_failed_marker_records_the_reason(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    job = await _new_job(context)
    await context.store.put_model(job_marker_key(job.jobId, Marker.FAILED), _failure(job.jobId))
    await _invoke(handler, lambda_sqs_event(await _receive(context, queue_url, 1), queue_arn, settings.aws_region))
    stored = await context.jobs.get(job.jobId)
    assert stored is not None
    assert stored.status == GenerationStatus.FAILED
    assert stored.error == JobError(code="generation_failed", message="boom")


async def test_test_event_and_unrelated_keys_are_ignored(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": settings.bucket}
    await context.store.put_bytes("jobs/not a job/other.json", b"{}", "application/json")
    messages = await _receive(context, queue_url, 1)
    key = json.loads(messages[0]["Body"])["Records"][0]["s3"]["object"]["key"]
    # Keys arrive URL-encoded: "+" for a space from AWS and moto, "%20" from LocalStack; unquote_plus reads both.
    assert key != "jobs/not a job/other.json" and unquote_plus(key) == "jobs/not a job/other.json"
    messages.append({"MessageId": "test-event", "ReceiptHandle": "r", "Body": json.dumps(test_event)})
    response = await _invoke(handler, lambda_sqs_event(messages, queue_arn, settings.aws_region))
    assert response == {"batchItemFailures": []}


async def test_partial_batch_failure_names_only_the_bad_message(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    good_job = await _new_job(context)
    bad_job = await _new_job(context)
    await context.store.put_model(job_marker_key(good_job.jobId, Marker.RESULT), _result(good_job.jobId))
    # A marker that breaks its contract: retrying cannot fix it, so it ends in the queue's DLQ.
    await context.store.put_bytes(job_marker_key(bad_job.jobId, Marker.RESULT), b'{"jobId": 1}', "application/json")
    messages = await _receive(context, queue_url, 2)
    messages.append({"MessageId": "garbage", "ReceiptHandle": "r", "Body": "not json"})
    response = await _invoke(handler, lambda_sqs_event(messages, queue_arn, settings.aws_region))
    bad_ids = {m["MessageId"] for m in messages if bad_job.jobId in m["Body"]} | {"garbage"}
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == bad_ids
    good, bad = await context.jobs.get(good_job.jobId), await context.jobs.get(bad_job.jobId)
    assert good is not None and good.status == GenerationStatus.COMPLETED
    assert bad is not None and bad.status == GenerationStatus.PROCESSING


async def test_marker_for_an_unknown_job_is_ignored(isolated) -> None:
    settings, context, handler, queue_url, queue_arn = isolated
    job_id = f"job_{secrets.token_hex(12)}"
    await context.store.put_model(job_marker_key(job_id, Marker.RESULT), _result(job_id))
    response = await _invoke(
        handler, lambda_sqs_event(await _receive(context, queue_url, 1), queue_arn, settings.aws_region)
    )
    assert response == {"batchItemFailures": []}
    assert await context.jobs.get(job_id) is None
