"""Canceling generations on the real path: a queued job (and a queued prediction) ends canceled at once; a
running one stops between two denoising steps, ends canceled through its `canceled.json` with no outputs in
the bucket, and its worker goes straight on to the next job."""

from __future__ import annotations

import secrets

import pytest

from events.records.jobs import GenerationJob
from events.states import GenerationStatus
from events.storage_keys import Marker, job_marker_key
from tests.support import bearer, eventually, generation_request, wait_for_job

pytestmark = pytest.mark.integration

# The most steps a request may ask: measured, tens of seconds of tiny-sd at 64x64 on this 2-core machine (and
# seconds on an idle one), so the job is surely caught running; the cancel ends it within a step or two.
LONG_STEPS = 50
LONG_SIDE = 64


async def _record(context, tenant: str, **extra: object) -> GenerationJob:
    """A queued generation written straight into the table: no command is published, so no worker takes it."""
    job_id = f"job_{secrets.token_hex(8)}"
    return await context.jobs.create(
        GenerationJob(jobId=job_id, tenantId=tenant, modelId="tiny-sd", request=generation_request(job_id), **extra)  # type: ignore[arg-type]
    )


async def test_a_queued_job_and_a_queued_prediction_are_canceled_at_once(client, context, api_key) -> None:
    job = await _record(context, "tenant-a")
    before = await client.get(f"/v1/images/jobs/{job.jobId}", headers=bearer(api_key))
    assert before.json()["queuePosition"] >= 0 and before.json()["estimatedStartAt"], before.text
    response = await client.post(f"/v1/images/jobs/{job.jobId}/cancel", headers=bearer(api_key))
    assert response.status_code == 202, response.text
    view = response.json()
    assert view["status"] == "failed" and view["error"]["code"] == "canceled" and view["completedAt"]
    assert "queuePosition" not in view
    again = await client.post(f"/v1/images/jobs/{job.jobId}/cancel", headers=bearer(api_key))
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished", again.text

    prediction = await _record(context, "tenant-a", scaleConfigLabels=[])
    response = await client.post(f"/v1/predictions/{prediction.jobId}/cancel", headers=bearer(api_key))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "canceled"
    stored = await context.jobs.get_as(prediction.jobId, GenerationJob)
    assert stored is not None and stored.status is GenerationStatus.CANCELED and stored.canceledBy == "user"
    # A plain generation is no prediction, and a prediction is read at its own URL only.
    assert (await client.post(f"/v1/predictions/{job.jobId}/cancel", headers=bearer(api_key))).status_code == 404


@pytest.mark.usefixtures("worker")
async def test_a_running_generation_stops_midway_with_no_outputs_and_its_worker_goes_on(
    client, context, api_key
) -> None:
    body = {
        "modelId": "tiny-sd",
        "prompt": "a long walk",
        "width": LONG_SIDE,
        "height": LONG_SIDE,
        "numInferenceSteps": LONG_STEPS,
    }
    response = await client.post("/v1/images/generate", json=body, headers=bearer(api_key))
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    await wait_for_job(client, job_id, bearer(api_key), statuses=("processing", "completed", "failed"))

    asked = await client.post(f"/v1/images/jobs/{job_id}/cancel", headers=bearer(api_key))
    assert asked.status_code == 202, asked.text
    assert asked.json()["status"] == "processing" and asked.json()["cancelRequested"] is True

    async def stored() -> GenerationJob | None:
        return await context.jobs.get_as(job_id, GenerationJob)

    ended = await eventually(stored, lambda j: j is not None and j.status is not GenerationStatus.PROCESSING, 30)
    assert ended is not None and ended.status is GenerationStatus.CANCELED, ended
    assert ended.canceledAtStep is not None and 0 < ended.canceledAtStep < LONG_STEPS
    assert ended.completedAt and ended.outputs is None
    assert await context.store.list_keys(f"jobs/{job_id}/") == [job_marker_key(job_id, Marker.CANCELED)]
    view = (await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(api_key))).json()
    assert view["status"] == "failed" and view["error"]["code"] == "canceled" and view["images"] == []

    # The same worker is not stuck: it completes the next job.
    canceled_by = (await context.store.get_json(job_marker_key(job_id, Marker.CANCELED)))["workerId"]
    small = {**body, "width": 64, "height": 64, "numInferenceSteps": 2}
    nxt = await client.post("/v1/images/generate", json=small, headers=bearer(api_key))
    done = await wait_for_job(client, nxt.json()["jobId"], bearer(api_key))
    assert done["status"] == "completed", done
    finished = await context.jobs.get_as(nxt.json()["jobId"], GenerationJob)
    assert finished is not None and finished.result is not None and finished.result.workerId == canceled_by
