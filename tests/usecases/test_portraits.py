"""The portrait flow on fakes: the portrait is written before its training is queued, then moved along by
its training's and its generations' lifecycle events, each of which may come twice."""

from __future__ import annotations

from enum import StrEnum

import pytest

from events.lifecycle import JOB_FAILED, JOB_STARTED, JOB_SUCCEEDED, JobError
from events.persistence import RecordExists
from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.states import GenerationStatus, JobKind, PortraitStatus, TrainingStatus
from events.topics import GENERATION_REQUESTS, JOB_LIFECYCLE, TRAINING_REQUESTS
from events.usecases import portraits, trainings
from events.usecases.adapters import model_adapter
from events.usecases.lifecycle import lifecycle_event
from tests.fakes import FakeBackends
from tests.usecases.builders import TENANT, finish_training, portrait_record, run_training, start, trainable_model

AnyJob = GenerationJob | TrainingJob | PortraitJob


async def _deliver(backends: FakeBackends, job: AnyJob, status: StrEnum) -> None:
    """Hand the portrait flow the lifecycle event of `job` reaching `status`."""
    await portraits.on_lifecycle(backends, lifecycle_event(job, status, "/test"))


async def _portrait_in_training(backends: FakeBackends, styles: int = 2) -> tuple[PortraitJob, TrainingJob]:
    """What the API does: model, portrait record, then the training tagged with the portrait."""
    model = await trainable_model(backends)
    name = trainings.name_training(model)
    portrait = await portraits.record_portrait(backends, portrait_record(model, name.training_id, styles=styles))
    training = await start(backends, model, extra={"portraitId": portrait.jobId}, name=name)
    return portrait, training


async def _portrait(backends: FakeBackends, portrait_id: str = "prt_abc") -> PortraitJob:
    portrait = await backends.jobs.get_as(portrait_id, PortraitJob)
    assert portrait is not None
    return portrait


async def _portrait_generating(backends: FakeBackends, styles: int = 2) -> tuple[PortraitJob, list[GenerationJob]]:
    _, training = await _portrait_in_training(backends, styles)
    done = await finish_training(backends, await run_training(backends, training))
    await _deliver(backends, done, TrainingStatus.SUCCEEDED)
    portrait = await _portrait(backends)
    generations = [await backends.jobs.get_as(style.jobId, GenerationJob) for style in portrait.styles]
    assert all(generations)
    return portrait, generations  # type: ignore[return-value]


async def _end_generation(backends: FakeBackends, job: GenerationJob, status: GenerationStatus) -> GenerationJob:
    await backends.jobs.claim(job.jobId, "worker-1", 60, kind=JobKind.GENERATION)
    fields = {"outputs": [f"jobs/{job.jobId}/0.png"]} if status is GenerationStatus.COMPLETED else {}
    if status is GenerationStatus.FAILED:
        fields = {"error": JobError(code="generation_error", message="out of memory")}
    ended = (await backends.jobs.advance(job.jobId, status, fields)).record
    assert isinstance(ended, GenerationJob)
    return ended


def _portrait_events(backends: FakeBackends) -> list[tuple[str, str]]:
    return [
        (s.event.type, s.event.data.status.value)
        for s in backends.publisher.on(JOB_LIFECYCLE)
        if s.event.data.kind is JobKind.PORTRAIT
    ]


async def test_the_portrait_is_written_in_training_before_its_training_is_queued(backends: FakeBackends) -> None:
    seen_when_queued: list[PortraitJob | None] = []
    publish = backends.publisher.publish

    async def watching(topic: str, event: object, key: str | None = None) -> None:
        if topic == TRAINING_REQUESTS:
            seen_when_queued.append(await backends.jobs.get_as("prt_abc", PortraitJob))
        await publish(topic, event, key)  # type: ignore[arg-type]

    backends.publisher.publish = watching  # type: ignore[method-assign]
    portrait, training = await _portrait_in_training(backends)
    assert portrait.status is PortraitStatus.TRAINING and portrait.queue is None  # portraits wait for no worker
    assert training.portraitId == portrait.jobId and training.jobId == portrait.trainingId
    [seen] = seen_when_queued
    assert seen is not None and seen.status is PortraitStatus.TRAINING
    with pytest.raises(RecordExists):
        await portraits.record_portrait(backends, portrait_record(await backends.models.get("mdl_1"), "trn_x"))  # type: ignore[arg-type]


async def test_the_portrait_starts_with_its_training(backends: FakeBackends) -> None:
    _, training = await _portrait_in_training(backends)
    running = await run_training(backends, training)
    await _deliver(backends, running, TrainingStatus.RUNNING)
    await _deliver(backends, running, TrainingStatus.RUNNING)
    assert _portrait_events(backends) == [(JOB_STARTED, "training")]
    assert (await _portrait(backends)).status is PortraitStatus.TRAINING


async def test_a_finished_training_queues_one_generation_per_style(backends: FakeBackends) -> None:
    portrait, generations = await _portrait_generating(backends, styles=3)
    assert portrait.status is PortraitStatus.GENERATING
    model = await backends.models.get("mdl_1")
    assert model is not None
    assert [g.jobId for g in generations] == portraits.style_job_ids("prt_abc", 3)
    for index, (style, job) in enumerate(zip(portrait.styles, generations, strict=True)):
        assert job.status is GenerationStatus.QUEUED and job.portraitId == "prt_abc" and job.tenantId == TENANT
        assert job.request.prompt == style.prompt and job.request.seed == portraits.SEED_BASE + index
        assert job.request.adapters == [model_adapter(model)]
        assert job.request.numOutputs == portrait.imagesPerStyle
    assert [s.key for s in backends.publisher.on(GENERATION_REQUESTS)] == [g.jobId for g in generations]


async def test_every_generation_done_completes_the_portrait(backends: FakeBackends) -> None:
    _, (first, second) = await _portrait_generating(backends)
    await _deliver(
        backends, await _end_generation(backends, first, GenerationStatus.COMPLETED), GenerationStatus.COMPLETED
    )
    assert (await _portrait(backends)).status is PortraitStatus.GENERATING
    ended = await _end_generation(backends, second, GenerationStatus.FAILED)
    await _deliver(backends, ended, GenerationStatus.FAILED)
    portrait = await _portrait(backends)
    assert portrait.status is PortraitStatus.COMPLETED and portrait.completedAt
    assert _portrait_events(backends) == [(JOB_SUCCEEDED, "completed")]


async def test_a_portrait_none_of_whose_styles_produced_images_fails(backends: FakeBackends) -> None:
    _, generations = await _portrait_generating(backends)
    for job in generations:
        await _deliver(backends, await _end_generation(backends, job, GenerationStatus.FAILED), GenerationStatus.FAILED)
    portrait = await _portrait(backends)
    assert portrait.status is PortraitStatus.FAILED
    assert portrait.error is not None and portrait.error.code == "generation_failed"
    assert _portrait_events(backends) == [(JOB_FAILED, "failed")]


async def test_a_failed_training_fails_the_portrait_with_its_message(backends: FakeBackends) -> None:
    _, training = await _portrait_in_training(backends)
    await run_training(backends, training)
    error = JobError(code="training_error", message="the loss went to NaN")
    failed = (await backends.jobs.advance(training.jobId, TrainingStatus.FAILED, {"error": error})).record
    assert isinstance(failed, TrainingJob)
    await _deliver(backends, failed, TrainingStatus.FAILED)
    portrait = await _portrait(backends)
    assert portrait.status is PortraitStatus.FAILED
    assert portrait.error == JobError(code="training_failed", message="the loss went to NaN")
    assert _portrait_events(backends) == [(JOB_FAILED, "failed")]
    assert backends.publisher.on(GENERATION_REQUESTS) == []


async def test_a_canceled_training_cancels_the_portrait(backends: FakeBackends) -> None:
    _, training = await _portrait_in_training(backends)
    canceled = await trainings.cancel_training(backends, training, source="/test")
    await _deliver(backends, canceled, TrainingStatus.CANCELED)
    assert (await _portrait(backends)).status is PortraitStatus.CANCELED


async def test_a_trained_model_gone_fails_the_portrait(backends: FakeBackends) -> None:
    _, training = await _portrait_in_training(backends)
    running = await run_training(backends, training)
    done = (await backends.jobs.advance(running.jobId, TrainingStatus.SUCCEEDED)).record  # no adapter recorded
    assert isinstance(done, TrainingJob)
    await _deliver(backends, done, TrainingStatus.SUCCEEDED)
    portrait = await _portrait(backends)
    assert portrait.status is PortraitStatus.FAILED
    assert portrait.error is not None and portrait.error.code == "model_unavailable"


async def test_redelivered_events_change_nothing(backends: FakeBackends) -> None:
    _, training = await _portrait_in_training(backends)
    done = await finish_training(backends, await run_training(backends, training))
    await _deliver(backends, done, TrainingStatus.SUCCEEDED)
    before = {job_id: dict(document) for job_id, document in backends.jobs.documents.items()}
    await _deliver(backends, done, TrainingStatus.SUCCEEDED)
    assert backends.jobs.documents == before  # the same jobs, nothing rewritten (their commands go out again)
    generations = [await backends.jobs.get_as(s.jobId, GenerationJob) for s in (await _portrait(backends)).styles]
    for job in generations:
        assert job is not None
        ended = await _end_generation(backends, job, GenerationStatus.COMPLETED)
        await _deliver(backends, ended, GenerationStatus.COMPLETED)
        await _deliver(backends, ended, GenerationStatus.COMPLETED)
    completed = await _portrait(backends)
    await _deliver(backends, done, TrainingStatus.SUCCEEDED)  # a training event after the end
    assert await _portrait(backends) == completed and completed.status is PortraitStatus.COMPLETED
    assert _portrait_events(backends) == [(JOB_SUCCEEDED, "completed")]


async def test_events_of_jobs_that_are_no_portraits_are_ignored(backends: FakeBackends) -> None:
    plain = await run_training(backends, await start(backends, await trainable_model(backends, "mdl_1")))
    await _deliver(backends, plain, TrainingStatus.RUNNING)
    orphan = await start(backends, await trainable_model(backends, "mdl_2"), extra={"portraitId": "prt_gone"})
    await _deliver(backends, await run_training(backends, orphan), TrainingStatus.RUNNING)
    assert backends.publisher.on(JOB_LIFECYCLE) == []
    assert await backends.jobs.get("prt_gone") is None
