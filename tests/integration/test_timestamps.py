"""One timestamp form in every API view: UTC to the millisecond with `Z` (`2023-02-03T11:19:41.579Z`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from events.states import GenerationStatus
from events.usecases.lifecycle import lifecycle_event
from functions.webhooks.dispatch import Dispatcher
from tests.http_server import loopback_server
from tests.journeys import QUICK, create_model, png, upload
from tests.support import bearer, eventually, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer")]

API_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Any string that starts like a date must be in the one form (presigned URLs carry dates inside, not first).
LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]")
TIME_FIELDS = re.compile(r"(At|Until|^at|^estimatedCompletion)$")


def times(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of `value` that is a time: a string shaped like one, or a field named like one."""
    if isinstance(value, dict):
        for name, item in value.items():
            if TIME_FIELDS.search(name) and isinstance(item, str):
                yield f"{path}.{name}", item
            else:
                yield from times(item, f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from times(item, f"{path}[{index}]")
    elif isinstance(value, str) and LOOKS_LIKE_A_TIME.match(value):
        yield path, value


async def test_every_view_gives_times_in_one_form(client, api_key, trained_pair, partner_api, loopback_context) -> None:
    auth = bearer(api_key)
    reds, _ = trained_pair
    views: dict[str, Any] = {}

    model_id = (await create_model(client, api_key, name="times"))["id"]
    await upload(client, api_key, model_id, png((90, 90, 200)))
    views["model"] = (await client.get(f"/v1/models/{model_id}", headers=auth)).json()
    views["models"] = (await client.get("/v1/models", params={"limit": 3}, headers=auth)).json()
    views["model detail"] = (await client.put(f"/v1/models/{reds.model_id}", json={}, headers=auth)).json()
    views["training data"] = (await client.get(f"/v1/models/{model_id}/training-data", headers=auth)).json()
    trainings = f"/v1/models/{reds.model_id}/trainings"
    views["training"] = (await client.get(f"{trainings}/{reds.training_id}", headers=auth)).json()
    views["trainings"] = (await client.get(trainings, headers=auth)).json()

    with loopback_server() as hooks:
        hooks.routes["/hook"] = (200, {}, b"ok")
        # Through the API of an operator setup that allows loopback webhooks.
        generated = await partner_api.post(
            "/v1/images/generate",
            json={"modelId": "tiny-sd", "prompt": "a fox", "numInferenceSteps": 2, "webhook": f"{hooks.base_url}/hook"},
            headers=auth,
        )
        assert generated.status_code == 202, generated.text
        views["job accepted"] = generated.json()
        job_id = generated.json()["jobId"]
        await wait_for_job(client, job_id, auth)
        # Deliver its completion as the webhooks function does.
        job = await loopback_context.jobs.get(job_id)
        assert job is not None
        await Dispatcher(loopback_context).on_lifecycle(lifecycle_event(job, GenerationStatus.COMPLETED, "/tests"))

    async def deliveries() -> list:
        return (await client.get(f"/v1/jobs/{job_id}/deliveries", headers=auth)).json()

    views["deliveries"] = await eventually(deliveries, lambda d: d and d[0]["attempts"], what="a delivery")
    views["job"] = (await client.get(f"/v1/images/jobs/{job_id}", headers=auth)).json()

    prediction = await client.post(
        "/v1/predictions",
        json={
            "scaleConfigs": {"1": {"scale": 1.0, "modelId": reds.model_id, "trainingId": reds.training_id}},
            "prompt": "a dress",
            "num_inference_steps": 2,
        },
        headers=auth,
    )
    views["prediction accepted"] = prediction.json()

    async def predicted() -> dict:
        return (await client.get(f"/v1/predictions/{prediction.json()['predictionId']}", headers=auth)).json()

    views["prediction"] = await eventually(predicted, lambda v: v["status"] == "succeeded", what="prediction")

    uploaded = await client.post(
        "/v1/uploads", content=png((150, 120, 90)), headers={**auth, "Content-Type": "image/png"}
    )
    views["upload"] = uploaded.json()
    views["presigned upload"] = (await client.post("/v1/uploads/presigned", headers=auth)).json()
    portrait = await client.post(
        "/v1/portraits",
        json={"gender": "man", "styles": ["business"], "imageKeys": [uploaded.json()["key"]], "parameters": QUICK},
        headers=auth,
    )
    assert portrait.status_code == 202, portrait.text
    views["portrait"] = (await client.get(f"/v1/portraits/{portrait.json()['portraitId']}", headers=auth)).json()
    views["secret"] = (await client.post("/v1/webhooks/secret/rotate", headers=auth)).json()
    train = await client.post(f"/v1/models/{model_id}/train", headers=auth)
    assert train.status_code == 202, train.text
    views["train accepted"] = train.json()

    found = {name: list(times(view)) for name, view in views.items()}
    assert all(found.values()), f"a view without times: {[name for name, f in found.items() if not f]}"
    wrong = [(name, path, value) for name, f in found.items() for path, value in f if not API_TIME.match(value)]
    assert not wrong, wrong
    # Milliseconds keep a fast job's times in order.
    job_view = views["job"]
    assert job_view["createdAt"] <= job_view["startedAt"] <= job_view["completedAt"]
