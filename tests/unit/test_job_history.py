"""The job history's pure parts: the cursor codec refuses anything it did not make for this tenant, the status
filter names the choices, and each kind of job has its kind word and its own URL."""

from __future__ import annotations

import base64
import json

import pytest

from events.records.jobs import GenerationJob, PortraitJob, PortraitStyle, TrainingJob
from functions.api.errors import ApiError
from functions.api.services.jobs import ALL_STATUSES, check_status_filter, job_summary
from infra.repositories.jobs import InvalidCursor, decode_cursor, encode_cursor
from tests.support import generation_request, training_request

KEY = {"jobId": "job_1", "tenantId": "tenant-a", "createdAt": "2026-12-01T10:00:00.123456+00:00"}


def _b64(document: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def test_a_cursor_round_trips_and_is_url_safe() -> None:
    cursor = encode_cursor({**KEY, "extra": "dropped"})
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, "tenant-a") == KEY


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%not-base64%%%",
        "x" * 2000,
        _b64([1, 2]),
        _b64("a string"),
        base64.urlsafe_b64encode(b"\xff\xfe not utf-8").decode(),
        _b64({"jobId": "job_1", "tenantId": "tenant-a"}),  # a field missing
        _b64({**KEY, "status": "queued"}),  # a field too many
        _b64({**KEY, "jobId": 7}),  # not a string
        _b64({**KEY, "jobId": ""}),
        _b64({**KEY, "createdAt": "yesterday"}),
    ],
)
def test_a_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "tenant-a")


def test_another_tenants_cursor_is_refused() -> None:
    with pytest.raises(InvalidCursor, match="another listing"):
        decode_cursor(encode_cursor(KEY), "tenant-b")


@pytest.mark.parametrize(
    ("kind", "status"),
    [("generation", "completed"), ("prediction", "processing"), ("training", "running"), ("portrait", "generating")],
)
def test_a_status_of_the_kind_passes(kind: str, status: str) -> None:
    check_status_filter(kind, status)  # type: ignore[arg-type]
    check_status_filter(None, status)


@pytest.mark.parametrize(("kind", "status"), [("training", "completed"), ("generation", "running"), (None, "done")])
def test_a_status_of_no_such_kind_is_refused_with_the_choices(kind: str | None, status: str) -> None:
    with pytest.raises(ApiError) as raised:
        check_status_filter(kind, status)  # type: ignore[arg-type]
    error = raised.value
    assert error.status == 422 and error.field == "status"
    assert status not in error.extra["choices"]
    if kind is None:
        assert error.extra["choices"] == list(ALL_STATUSES)
        assert {"queued", "processing", "running", "succeeded", "completed", "generating"} <= set(ALL_STATUSES)


def test_each_kind_of_job_has_its_word_and_its_own_url() -> None:
    generation = GenerationJob(jobId="job_1", tenantId="t", modelId="tiny-sd", request=generation_request("job_1"))
    prediction = generation.model_copy(update={"jobId": "job_2", "scaleConfigLabels": ["1"]})
    training = TrainingJob(
        jobId="trn_1", tenantId="t", modelId="mod_1", triggerWord="W", request=training_request("trn_1", "mod_1")
    )
    style = PortraitStyle(id="s", name="S", prompt="p", jobId="job_3")
    portrait = PortraitJob(jobId="prt_1", tenantId="t", trainingId="trn_1", gender="female", styles=[style])
    summaries = [job_summary(job) for job in (generation, prediction, training, portrait)]
    assert [(s.kind, s.url) for s in summaries] == [
        ("generation", "/v1/images/jobs/job_1"),
        ("prediction", "/v1/predictions/job_2"),
        ("training", "/v1/models/mod_1/trainings/trn_1"),
        ("portrait", "/v1/portraits/prt_1"),
    ]
    assert [s.status for s in summaries] == ["queued", "queued", "queued", "training"]
