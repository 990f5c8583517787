"""Webhooks against moto, the real broker and a loopback receiver: signed deliveries, the persisted retry
schedule on a fake clock across a dispatcher restart, 410, Retry-After, SSRF refusals, rotation, re-send."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from events.records.jobs import GenerationJob
from events.states import DeliveryStatus, GenerationStatus
from events.usecases.lifecycle import lifecycle_event
from events.webhooks import RetryPolicy, WebhookSubscription
from functions.webhooks.dispatch import Dispatcher
from infra.runtime import ServiceContext
from tests.http_server import LoopbackServer, loopback_server
from tests.support import bearer, eventually, generation_request

pytestmark = pytest.mark.integration


class FakeClock:
    """A clock the test moves by hand, starting now (receivers check timestamps against real time)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def hooks() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        server.routes["/hook"] = (200, {}, b"ok")
        yield server


async def make_job(
    context: ServiceContext, url: str, events: list[str] | None = None, tenant: str = "tenant-a"
) -> GenerationJob:
    """A generation job record with a webhook, never published: only the test's dispatcher acts on it."""
    job_id = f"job_{secrets.token_hex(8)}"
    return await context.jobs.create(
        GenerationJob(
            jobId=job_id,
            tenantId=tenant,
            modelId="tiny-sd",
            request=generation_request(job_id),
            webhook=WebhookSubscription.model_validate(
                {"url": url, "events": events or ["completed", "failed", "canceled"]}
            ),
        )
    )


def completed(job: GenerationJob):
    return lifecycle_event(job, GenerationStatus.COMPLETED, "/tests")


async def secret_of(client: httpx.AsyncClient, key: str) -> str:
    response = await client.get("/v1/webhooks/secret", headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()["secret"]


async def test_a_job_calls_its_webhook_with_signed_events(partner_api, api_key, hooks, worker, webhooks_source) -> None:
    response = await partner_api.post(
        "/v1/images/generate",
        json={
            "modelId": "tiny-sd",
            "prompt": "a fox",
            "numInferenceSteps": 2,
            "webhook": f"{hooks.base_url}/hook",
            "webhookEvents": ["start", "completed"],
        },
        headers=bearer(api_key),
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]

    async def received() -> list:
        return [p for p in hooks.posts if job_id in p.body.decode()]

    mine = await eventually(
        received,
        lambda posts: len(posts) == 2,
        timeout_s=60,
        what="two webhook deliveries",
    )
    secret = await secret_of(partner_api, api_key)
    bodies = [Webhook(secret).verify(p.body, p.headers) for p in mine]
    assert sorted(b["type"] for b in bodies) == ["job.completed", "job.start"]
    assert all(b["data"]["jobId"] == job_id for b in bodies)
    assert {p.headers["webhook-id"] for p in mine} == {f"msg_{job_id}_start", f"msg_{job_id}_completed"}

    async def view() -> dict:
        return (await partner_api.get(f"/v1/images/jobs/{job_id}", headers=bearer(api_key))).json()

    shown = await eventually(
        view, lambda v: [d["status"] for d in v["deliveries"]] == ["delivered", "delivered"], what="deliveries"
    )
    assert shown["webhook"] == {"url": f"{hooks.base_url}/hook", "events": ["start", "completed"]}
    assert all(d["attempts"][0]["statusCode"] == 200 for d in shown["deliveries"])


async def test_retries_follow_the_persisted_schedule_across_a_restart(loopback_context, hooks) -> None:
    hooks.routes["/flaky"] = [(500, {}, b"boom"), (429, {"Retry-After": "120"}, b"slow down"), (200, {}, b"ok")]
    job = await make_job(loopback_context, f"{hooks.base_url}/flaky")
    clock = FakeClock()
    first = Dispatcher(loopback_context, clock=clock, policy=RetryPolicy(base=timedelta(seconds=10)))
    await first.on_lifecycle(completed(job))
    delivery_id = f"msg_{job.jobId}_completed"
    record = await loopback_context.deliveries.get(job.jobId, delivery_id)
    assert record is not None
    assert record.status == DeliveryStatus.PENDING and [a.statusCode for a in record.attempts] == [500]

    # The dispatcher "restarts": a new one, knowing nothing, finds the retry in DynamoDB when it is due. The
    # sweep serves the whole table (other tests' retries fall due too), so this delivery's own record is read.
    restarted = Dispatcher(loopback_context, clock=clock, policy=RetryPolicy(base=timedelta(seconds=10)))

    async def codes_after_sweep() -> list[int]:
        await restarted.sweep()
        record = await loopback_context.deliveries.get(job.jobId, delivery_id)
        assert record is not None
        return [a.statusCode for a in record.attempts]

    assert await codes_after_sweep() == [500], "nothing is due before the backoff has passed"
    clock.advance(11)
    assert await codes_after_sweep() == [500, 429]
    clock.advance(60)  # past the 20 s backoff, not past Retry-After: 120
    assert await codes_after_sweep() == [500, 429]
    clock.advance(61)
    assert await codes_after_sweep() == [500, 429, 200]
    record = await loopback_context.deliveries.get(job.jobId, delivery_id)
    assert record is not None and record.status == DeliveryStatus.DELIVERED
    flaky = [p for p in hooks.posts if p.path == "/flaky"]
    assert len(flaky) == 3 and {p.headers["webhook-id"] for p in flaky} == {delivery_id}
    # A redelivered lifecycle event makes no second delivery.
    await restarted.on_lifecycle(completed(job))
    assert len([p for p in hooks.posts if p.path == "/flaky"]) == 3


async def test_410_stops_and_a_5xx_streak_gives_up(loopback_context, hooks) -> None:
    hooks.routes["/gone"] = (410, {}, b"")
    hooks.routes["/down"] = (503, {}, b"")
    clock = FakeClock()
    dispatcher = Dispatcher(loopback_context, clock=clock, policy=RetryPolicy(max_attempts=3))
    gone = await make_job(loopback_context, f"{hooks.base_url}/gone")
    down = await make_job(loopback_context, f"{hooks.base_url}/down")
    await dispatcher.on_lifecycle(completed(gone))
    await dispatcher.on_lifecycle(completed(down))
    for _ in range(4):
        clock.advance(3600)
        await dispatcher.sweep()
    gone_record = await loopback_context.deliveries.get(gone.jobId, f"msg_{gone.jobId}_completed")
    down_record = await loopback_context.deliveries.get(down.jobId, f"msg_{down.jobId}_completed")
    assert gone_record is not None and down_record is not None
    assert gone_record.status == DeliveryStatus.GONE and len(gone_record.attempts) == 1
    assert down_record.status == DeliveryStatus.FAILED and len(down_record.attempts) == 3
    assert [p.path for p in hooks.posts].count("/gone") == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://0x7f000001:{port}/hook",
        "http://localhost:{port}/hook",
    ],
)
async def test_callbacks_to_non_public_addresses_are_refused_at_connect_time(context, hooks, url: str) -> None:
    port = hooks.httpd.server_address[1]
    job = await make_job(context, url.format(port=port))
    await Dispatcher(context).on_lifecycle(completed(job))
    record = await context.deliveries.get(job.jobId, f"msg_{job.jobId}_completed")
    assert record is not None
    assert record.status == DeliveryStatus.FAILED, record  # never retried: the address stays forbidden
    assert record.attempts[0].statusCode is None and "refused" in (record.attempts[0].error or "")
    assert hooks.requests == []


async def test_a_redirect_into_loopback_is_refused(bootstrapped, hooks) -> None:
    # The first hop stands for a public receiver (its address allowed, as an operator allows a partner
    # network); it redirects to ::1, which is not allowed: the second connection is refused.
    port = hooks.httpd.server_address[1]
    hooks.routes["/hop"] = (307, {"Location": f"http://[::1]:{port}/hook"}, b"")
    context = await ServiceContext(bootstrapped.model_copy(update={"egress_allowed_networks": ["127.0.0.1/32"]})).open()
    try:
        job = await make_job(context, f"{hooks.base_url}/hop")
        await Dispatcher(context).on_lifecycle(completed(job))
        record = await context.deliveries.get(job.jobId, f"msg_{job.jobId}_completed")
    finally:
        await context.close()
    assert record is not None
    assert record.status == DeliveryStatus.FAILED and "refused" in (record.attempts[0].error or "")
    assert hooks.requests == ["/hop"]


@pytest.mark.parametrize(
    ("webhook", "events", "code"),
    [
        ("http://127.0.0.1/hook", None, "webhook_url_forbidden"),
        ("http://10.0.0.1/hook", None, "webhook_url_forbidden"),
        ("http://169.254.169.254/", None, "webhook_url_forbidden"),
        ("http://[::1]/hook", None, "webhook_url_forbidden"),
        ("http://localhost:8080/hook", None, "webhook_url_forbidden"),
        ("ftp://example.com/hook", None, "validation_error"),
        ("not a url", None, "validation_error"),
        ("https://user:pw@example.com/hook", None, "validation_error"),
        ("https://example.com/hook", ["finished"], "validation_error"),
        (None, ["completed"], "validation_error"),
    ],
)
async def test_bad_webhooks_are_refused_before_a_job_exists(client, api_key, webhook, events, code) -> None:
    body: dict[str, Any] = {"modelId": "tiny-sd", "prompt": "p"}
    if webhook is not None:
        body["webhook"] = webhook
    if events is not None:
        body["webhookEvents"] = events
    response = await client.post("/v1/images/generate", json=body, headers=bearer(api_key))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_rotation_signs_with_both_secrets_then_the_new_one(partner_api, loopback_context, api_key, hooks) -> None:
    old = await secret_of(partner_api, api_key)
    rotated = (await partner_api.post("/v1/webhooks/secret/rotate", headers=bearer(api_key))).json()
    assert rotated["previousSecret"] == old and rotated["secret"] != old and rotated["previousValidUntil"]
    job = await make_job(loopback_context, f"{hooks.base_url}/hook")
    await Dispatcher(loopback_context).on_lifecycle(completed(job))
    post = hooks.posts[-1]
    assert len(post.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, rotated["secret"]):
        Webhook(secret).verify(post.body, post.headers)


async def test_deliveries_are_listed_and_can_be_resent(partner_api, loopback_context, api_key, other_api_key, hooks):
    hooks.routes["/once"] = [(500, {}, b"no"), (200, {}, b"ok")]
    job = await make_job(loopback_context, f"{hooks.base_url}/once")
    await Dispatcher(loopback_context).on_lifecycle(completed(job))
    listed = await partner_api.get(f"/v1/jobs/{job.jobId}/deliveries", headers=bearer(api_key))
    assert listed.status_code == 200
    [delivery] = listed.json()
    assert delivery["status"] == "pending" and delivery["nextAttemptAt"]
    assert delivery["attempts"][0]["statusCode"] == 500 and delivery["attempts"][0]["error"] == "no"
    resent = await partner_api.post(
        f"/v1/jobs/{job.jobId}/deliveries/{delivery['deliveryId']}/resend", headers=bearer(api_key)
    )
    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "delivered" and len(resent.json()["attempts"]) == 2
    assert [p.headers["webhook-id"] for p in hooks.posts if p.path == "/once"] == [delivery["deliveryId"]] * 2
    for path in (f"/v1/jobs/{job.jobId}/deliveries", f"/v1/jobs/{job.jobId}/deliveries/x/resend"):
        method = "GET" if path.endswith("deliveries") else "POST"
        foreign = await partner_api.request(method, path, headers=bearer(other_api_key))
        assert foreign.status_code == 404
    missing = await partner_api.post(f"/v1/jobs/{job.jobId}/deliveries/msg_nope/resend", headers=bearer(api_key))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "delivery_not_found"


async def test_a_training_reports_progress_checkpoints_and_completion(
    partner_api, api_key, hooks, trainer, webhooks_source
) -> None:
    from tests.journeys import QUICK, create_model, png, upload

    model_id = (await create_model(partner_api, api_key, name="hooked"))["id"]
    await upload(partner_api, api_key, model_id, png((200, 30, 30)))
    started = await partner_api.post(
        f"/v1/models/{model_id}/trainings",
        json={
            "parameters": QUICK,
            "webhook": f"{hooks.base_url}/hook",
            "webhookEvents": ["progress", "checkpoint", "completed"],
        },
        headers=bearer(api_key),
    )
    assert started.status_code == 202, started.text
    training_id = started.json()["trainingId"]

    async def received() -> list[dict]:
        return [json.loads(p.body) for p in hooks.posts if training_id in p.body.decode()]

    bodies = await eventually(
        received, lambda b: any(x["type"] == "job.completed" for x in b), timeout_s=120, what="training completion"
    )
    secret = await secret_of(partner_api, api_key)
    for post in (p for p in hooks.posts if training_id in p.body.decode()):
        Webhook(secret).verify(post.body, post.headers)
    checkpoints = sorted(b["data"]["epoch"] for b in bodies if b["type"] == "job.checkpoint")
    assert checkpoints == ["000001", "000002"]
    progress = [b["data"]["progress"] for b in bodies if b["type"] == "job.progress"]
    assert progress and all(1 <= p["totalSteps"] == QUICK["maxTrainSteps"] for p in progress)
    assert not any(b["type"] == "job.start" for b in bodies), "start was not subscribed"
    view = (await partner_api.get(f"/v1/models/{model_id}/trainings/{training_id}", headers=bearer(api_key))).json()
    assert {d["event"] for d in view["deliveries"]} >= {"checkpoint", "completed"}
