"""Job history (every kind, newest first, cursor-paginated) and canceling generations. No FastAPI here."""

from __future__ import annotations

from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.states import GenerationStatus, JobKind, PortraitStatus, TrainingStatus
from events.usecases import jobs as usecase
from functions.api.errors import ApiError
from functions.api.schemas.jobs import HistoryKind, JobHistory, JobSummary
from infra.metrics import JOBS_CANCELED
from infra.repositories.jobs import AnyJob, InvalidCursor
from infra.runtime import ServiceContext

SOURCE = "/lorafoundry/api"

# The stored statuses each history kind can have (a prediction is a generation).
STATUSES_OF_KIND: dict[HistoryKind, tuple[str, ...]] = {
    "generation": tuple(s.value for s in GenerationStatus),
    "prediction": tuple(s.value for s in GenerationStatus),
    "training": tuple(s.value for s in TrainingStatus),
    "portrait": tuple(s.value for s in PortraitStatus),
}
ALL_STATUSES: tuple[str, ...] = tuple(sorted({s for statuses in STATUSES_OF_KIND.values() for s in statuses}))

# How each history kind is found in the jobs table: the stored kind, and whether it is a prediction.
_STORED_KIND: dict[HistoryKind, tuple[JobKind, bool | None]] = {
    "generation": (JobKind.GENERATION, False),
    "prediction": (JobKind.GENERATION, True),
    "training": (JobKind.TRAINING, None),
    "portrait": (JobKind.PORTRAIT, None),
}


def check_status_filter(kind: HistoryKind | None, status: str | None) -> None:
    """422 naming the choices when `status` is no status of `kind` (of any kind, without one)."""
    if status is None:
        return
    choices = STATUSES_OF_KIND[kind] if kind is not None else ALL_STATUSES
    if status not in choices:
        of = f"a {kind} job" if kind is not None else "a job"
        raise ApiError(
            422,
            "validation_error",
            f"{status!r} is not a status of {of}; choose one of: {', '.join(choices)}",
            field="status",
            extra={"choices": list(choices)},
        )


def history_kind(job: AnyJob) -> HistoryKind:
    """What the job is to a client."""
    if isinstance(job, GenerationJob):
        return "prediction" if job.scaleConfigLabels is not None else "generation"
    return "training" if isinstance(job, TrainingJob) else "portrait"


def resource_url(job: AnyJob) -> str:
    """The path of the job's own resource, where its whole view is read."""
    if isinstance(job, GenerationJob):
        return f"/v1/predictions/{job.jobId}" if job.scaleConfigLabels is not None else f"/v1/images/jobs/{job.jobId}"
    if isinstance(job, TrainingJob):
        return f"/v1/models/{job.modelId}/trainings/{job.jobId}"
    return f"/v1/portraits/{job.jobId}"


def job_summary(job: AnyJob) -> JobSummary:
    """One history entry."""
    return JobSummary(
        id=job.jobId,
        kind=history_kind(job),
        status=job.status.value,
        createdAt=job.createdAt,
        updatedAt=job.updatedAt,
        completedAt=job.completedAt,
        modelId=job.modelId,
        portraitId=None if isinstance(job, PortraitJob) else job.portraitId,
        url=resource_url(job),
    )


async def job_history(
    context: ServiceContext,
    tenant_id: str,
    *,
    limit: int,
    kind: HistoryKind | None = None,
    status: str | None = None,
    cursor: str | None = None,
) -> JobHistory:
    """A page of the tenant's live jobs, newest first; 422 for a status of no such kind, 400 for a cursor
    this service did not give this tenant."""
    check_status_filter(kind, status)
    stored_kind, predictions = _STORED_KIND[kind] if kind is not None else (None, None)
    try:
        page = await context.jobs.page_for_tenant(
            tenant_id, limit=limit, cursor=cursor, kind=stored_kind, predictions=predictions, status=status
        )
    except InvalidCursor as exc:
        raise ApiError(
            400, "invalid_cursor", f"{exc}: pass the nextCursor of a page of this listing", field="cursor"
        ) from exc
    return JobHistory(data=[job_summary(job) for job in page.jobs], nextCursor=page.next_cursor)


async def cancel_generation(context: ServiceContext, job: GenerationJob, field: str = "jobId") -> GenerationJob:
    """Cancel a queued generation (or prediction) at once, or ask its worker to stop between two steps; 409
    if it already ended (`events.usecases.jobs.cancel_generation`)."""
    updated = await usecase.cancel_generation(context, job, source=SOURCE, field=field)
    JOBS_CANCELED.labels(kind=JobKind.GENERATION.value).inc()
    return updated
