"""The fakes keep the adapters' promises that the use cases rely on (the integration tier checks the adapters
themselves): outcomes of a move, version bumps, undeclared names refused, tenant scoping, conditional writes,
and the sparse queue and in-flight partitions the reconciler reads."""

from __future__ import annotations

import pytest

from events.persistence import AdvanceOutcome, StaleWrite
from events.records.jobs import GenerationJob
from events.states import GenerationStatus, JobKind, ModelStatus, TrainingStatus
from tests.fakes import FakeBackends
from tests.usecases.builders import TENANT, generation_data, new_model

FAR_FUTURE = 10**12


async def _job(backends: FakeBackends, job_id: str = "job_1") -> GenerationJob:
    return await backends.jobs.create(GenerationJob(jobId=job_id, tenantId=TENANT, request=generation_data(job_id)))


async def test_a_move_has_the_repositorys_outcomes_and_bumps_the_version(backends: FakeBackends) -> None:
    assert (await backends.jobs.advance("nope", GenerationStatus.FAILED)).outcome is AdvanceOutcome.MISSING
    await _job(backends)
    applied = await backends.jobs.advance("job_1", GenerationStatus.CANCELED)
    assert applied.outcome is AdvanceOutcome.APPLIED and applied.record and applied.record.version == 2
    assert (await backends.jobs.advance("job_1", GenerationStatus.CANCELED)).outcome is AdvanceOutcome.ALREADY
    assert (await backends.jobs.advance("job_1", GenerationStatus.PROCESSING)).outcome is AdvanceOutcome.REJECTED
    assert (await backends.jobs.advance("job_1", TrainingStatus.CANCELED)).outcome is AdvanceOutcome.REJECTED
    model = await new_model(backends)
    assert (await backends.models.advance(model.modelId, ModelStatus.TRAINED)).outcome is AdvanceOutcome.REJECTED
    stored = await backends.jobs.get("job_1")
    assert stored is not None and stored.version == 2


async def test_undeclared_fields_are_refused_before_anything_is_written(backends: FakeBackends) -> None:
    await _job(backends)
    with pytest.raises(ValueError, match="triggerWord"):
        await backends.jobs.advance("job_1", GenerationStatus.FAILED, {"triggerWord": "x"})  # a training's field
    with pytest.raises(ValueError, match="colour"):
        await backends.jobs.update_fields("job_1", {"colour": "red"})
    with pytest.raises(ValueError, match="colour"):
        await backends.jobs.update_fields("job_1", {}, remove=["colour"])
    stored = await backends.jobs.get("job_1")
    assert stored is not None and stored.status is GenerationStatus.QUEUED and stored.version == 1


async def test_reads_are_scoped_to_the_tenant_and_copies(backends: FakeBackends) -> None:
    job = await _job(backends)
    assert await backends.jobs.get_for_tenant("ten_other", "job_1") is None
    assert await backends.jobs.get_for_tenant(TENANT, "job_1") == job
    job.request.prompt = "changed in hand"
    stored = await backends.jobs.get_as("job_1", GenerationJob)
    assert stored is not None and stored.request.prompt == "a cat"


async def test_conditional_field_writes(backends: FakeBackends) -> None:
    await _job(backends)
    with pytest.raises(StaleWrite):
        await backends.jobs.update_fields(
            "job_1", {"deletedAt": "2026-01-01T00:00:00+00:00"}, condition="#status = :s", values={":s": "processing"}
        )
    with pytest.raises(StaleWrite):
        await backends.jobs.update_fields("job_1", {"republishedAttempt": 1}, expected_version=7)
    with pytest.raises(StaleWrite):
        await backends.jobs.update_fields("nope", {"republishedAttempt": 1})
    written = await backends.jobs.update_fields(
        "job_1", {"republishedAttempt": 1}, condition="#status = :s", values={":s": GenerationStatus.QUEUED}
    )
    assert written.republishedAttempt == 1 and written.version == 2
    with pytest.raises(NotImplementedError):
        await backends.jobs.update_fields("job_1", {"republishedAttempt": 2}, condition="size(outputs) > :n")


async def test_the_sparse_partitions_follow_a_job_through_its_claims(backends: FakeBackends) -> None:
    await _job(backends, "job_1")
    await _job(backends, "job_2")
    waiting = await backends.jobs.waiting_since_before(JobKind.GENERATION, "9999")
    assert [j.jobId for j in waiting] == ["job_1", "job_2"]
    assert await backends.jobs.waiting_since_before(JobKind.TRAINING, "9999") == []
    claimed = await backends.jobs.claim("job_1", "worker-1", -1, kind=JobKind.GENERATION)  # a lease already over
    assert claimed is not None and (claimed.queue, claimed.inFlight, claimed.attempts) == (None, "generation", 1)
    assert await backends.jobs.claim("job_1", "worker-1", 60, kind=JobKind.TRAINING) is None
    assert [j.jobId for j in await backends.jobs.waiting_since_before(JobKind.GENERATION, "9999")] == ["job_2"]
    assert [j.jobId for j in await backends.jobs.lease_lapsed(JobKind.GENERATION, FAR_FUTURE)] == ["job_1"]
    taken_over = await backends.jobs.claim("job_1", "worker-2", 60, kind=JobKind.GENERATION)
    assert taken_over is not None and (taken_over.leaseOwner, taken_over.attempts) == ("worker-2", 2)
    assert taken_over.startedAt == claimed.startedAt
    assert await backends.jobs.claim("job_1", "worker-3", 60, kind=JobKind.GENERATION) is None  # held
    assert await backends.jobs.renew_lease("job_1", "worker-2", 60, kind=JobKind.GENERATION)
    assert not await backends.jobs.renew_lease("job_1", "worker-3", 60, kind=JobKind.GENERATION)
    ended = (await backends.jobs.advance("job_1", GenerationStatus.COMPLETED)).record
    assert ended is not None and ended.inFlight is None
    assert await backends.jobs.lease_lapsed(JobKind.GENERATION, FAR_FUTURE) == []
    assert await backends.jobs.count_queued_before("9999", JobKind.GENERATION) == 1
