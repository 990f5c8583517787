"""A trainer killed mid-training loses nothing; cancel stops a running training within a few steps.

The crash test runs on its own broker and resources, with trainers as real subprocesses (SIGKILL).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from events.records.jobs import TrainingJob
from infra.local.processes import ManagedProcess
from infra.settings import Settings
from tests.conftest import Broker, make_settings
from tests.journeys import create_model, png, upload, wait_for_training
from tests.support import bearer, eventually, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.serial]

TRAINER_READY = "trainer worker ready"
STATUS_ORDER = ["starting", "processing", "succeeded"]


async def test_cancel_a_running_and_a_queued_training(client, api_key, trainer):
    long_run = {"maxTrainSteps": 5000, "nbEpochs": 1, "rank": 4, "samplePrompts": []}
    running_model = await create_model(client, api_key, name="runs long")
    running_path = f"/v1/models/{running_model['modelId']}/trainings"
    queued_model = await create_model(client, api_key, name="waits")
    for model in (running_model, queued_model):
        await upload(client, api_key, model["modelId"], png((120, 120, 20)))
    first = await client.post(f"{running_path}", json={"parameters": long_run}, headers=bearer(api_key))
    first_id = first.json()["trainingId"]

    async def progress() -> dict:
        response = await client.get(f"{running_path}/{first_id}", headers=bearer(api_key))
        return response.json()

    running = await eventually(
        progress, lambda v: (v.get("progress") or {}).get("step", 0) > 0, timeout_s=120, what="training progress"
    )
    assert running["status"] == "processing" and running["progress"]["totalSteps"] == 5000

    # The one trainer is busy: this one waits in the queue, and its position says so.
    second = await client.post(
        f"/v1/models/{queued_model['modelId']}/trainings", json={"parameters": long_run}, headers=bearer(api_key)
    )
    second_id = second.json()["trainingId"]
    waiting = await client.get(f"/v1/models/{queued_model['modelId']}/trainings/{second_id}", headers=bearer(api_key))
    assert waiting.json()["status"] == "starting" and waiting.json()["queuePosition"] == 0
    detail = (await client.put(f"/v1/models/{queued_model['modelId']}", json={}, headers=bearer(api_key))).json()
    assert detail["model"]["trainingProgress"]["stage"] == "queued-for-train"

    canceled = await client.post(
        f"/v1/models/{queued_model['modelId']}/trainings/{second_id}/cancel", headers=bearer(api_key)
    )
    assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
    view = (await client.get(f"/v1/models/{queued_model['modelId']}", headers=bearer(api_key))).json()
    assert view["status"] == "pending_training"

    asked = await client.post(f"{running_path}/{first_id}/cancel", headers=bearer(api_key))
    assert asked.status_code == 202 and asked.json()["cancelRequested"] is True
    done = await wait_for_training(client, api_key, running_model["modelId"], first_id, ("canceled", "succeeded"))
    assert done["status"] == "canceled" and done["error"]["code"] == "canceled"
    detail = (await client.put(f"/v1/models/{running_model['modelId']}", json={}, headers=bearer(api_key))).json()
    assert detail["model"]["status"] == "training-canceled"

    again = await client.post(f"{running_path}/{first_id}/cancel", headers=bearer(api_key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "training_finished"


@pytest.fixture
async def isolated(moto_endpoint: str, log_dir: Path) -> AsyncIterator[tuple[Settings, httpx.AsyncClient, str]]:
    """Own broker, own tables and bucket, own notification poller and API: nothing else consumes here."""
    from functions.api.app import create_app
    from functions.s3_events.handler import S3EventsLambda
    from infra.bootstrap import bootstrap
    from infra.local.sqs_poller import SqsPoller
    from infra.runtime import ServiceContext

    broker = Broker(log_dir / f"crash-{secrets.token_hex(2)}")
    broker.log_dir.mkdir(parents=True, exist_ok=True)
    broker.start()
    settings = make_settings(
        moto_endpoint,
        broker,
        f"lfc-{secrets.token_hex(3)}",
        kafka_training_consumer_group="crash-trainers",
        worker_lease_seconds=5,
    )
    await bootstrap(settings)
    context = await ServiceContext(settings).open()
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id="tenant-crash", name="crash test")
    await context.close()
    handler = S3EventsLambda(lambda: settings)
    stop = threading.Event()
    thread = threading.Thread(target=SqsPoller(settings, settings.notifications_queue, handler).run, args=(stop,))
    thread.start()
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            yield settings, client, key
    finally:
        if app.state.context is not None:
            await app.state.context.close()
        stop.set()
        await asyncio.to_thread(thread.join, 30)
        await asyncio.to_thread(handler.close)  # it runs its own event loop
        broker.stop()


def start_trainer(settings: Settings, name: str, log_dir: Path) -> ManagedProcess:
    env = settings_env(settings, worker_id=name)
    process = ManagedProcess(name, [sys.executable, "-m", "workers.trainer"], log_dir / f"{name}.log", env=env)
    process.start()
    process.wait_ready(lambda: process.log_contains(TRAINER_READY), 180)
    return process


async def test_a_killed_trainer_is_resumed_from_its_last_checkpoint(isolated, log_dir):
    settings, client, key = isolated
    model = await create_model(client, key, name="survives a crash")
    model_id = model["modelId"]
    await upload(client, key, model_id, png((200, 100, 20)))
    first = await asyncio.to_thread(start_trainer, settings, "trainer-first", log_dir)
    second: ManagedProcess | None = None
    try:
        parameters = {"maxTrainSteps": 90, "nbEpochs": 3, "rank": 4, "samplePrompts": [], "seed": 3}
        response = await client.post(
            f"/v1/models/{model_id}/trainings", json={"parameters": parameters}, headers=bearer(key)
        )
        training_id = response.json()["trainingId"]
        seen: list[str] = []

        async def view() -> dict:
            current = (await client.get(f"/v1/models/{model_id}/trainings/{training_id}", headers=bearer(key))).json()
            seen.append(current["status"])
            return current

        await eventually(view, lambda v: len(v["epochs"]) >= 1, timeout_s=120, what="the first checkpoint")
        first.kill()  # SIGKILL: no chance to clean up, commit or write a marker
        second = await asyncio.to_thread(start_trainer, settings, "trainer-second", log_dir)
        done = await eventually(view, lambda v: v["status"] in ("succeeded", "failed"), timeout_s=180, what="resume")
        assert done["status"] == "succeeded", done
        # Statuses only ever moved forward.
        order = [STATUS_ORDER.index(s) for s in seen]
        assert order == sorted(order), seen

        from infra.runtime import ServiceContext

        context = await ServiceContext(settings).open(kafka=False)
        try:
            record = await context.jobs.get_as(training_id, TrainingJob)
            keys = await context.store.list_keys(f"trainings/{training_id}/")
        finally:
            await context.close()
        assert record is not None and record.result is not None
        result = record.result
        assert result.workerId == "trainer-second" and result.attempt == 2
        assert 30 <= result.resumedFromStep < 90 and result.steps == 90
        assert result.epochs == ["000001", "000002", "000003"]
        assert [k for k in keys if k.endswith("adapter.safetensors") and "/checkpoints/" not in k] == [
            record.adapterKey
        ]
    finally:
        first.stop()
        if second is not None:
            second.stop()
