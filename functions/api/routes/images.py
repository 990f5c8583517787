"""Realm-style images routes: `POST /v1/images/generate`, `POST /v1/images/modify`, `GET /v1/images/jobs/{jobId}`,
`POST /v1/images/jobs/{jobId}/cancel`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Response

from events.records.jobs import GenerationJob
from functions.api.dependencies import ContextDep, JobIdPath, TenantDep, TraceparentDep
from functions.api.dialects.realm_style import render_job
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.images import GenerateImageRequest, JobAccepted, JobView, ModifyImageForm
from functions.api.services.generation import submit_generation, submit_modify
from functions.api.services.jobs import cancel_generation
from infra.runtime import ServiceContext

router = APIRouter(prefix="/v1/images", tags=["images"], responses=ERROR_RESPONSES)


@router.post("/generate", status_code=202, response_model=JobAccepted, responses=error_responses(404, 409))
async def generate_image(
    body: GenerateImageRequest,
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: TraceparentDep,
) -> JobAccepted:
    """Queue a text-to-image job; poll `GET /v1/images/jobs/{jobId}` for the result."""
    job = await submit_generation(context, tenant, body, traceparent=traceparent)
    return _accepted(job, response)


@router.post("/modify", status_code=202, response_model=JobAccepted, responses=error_responses(404, 409, 413, 415))
async def modify_image(
    form: Annotated[ModifyImageForm, Form(media_type="multipart/form-data")],
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: TraceparentDep,
) -> JobAccepted:
    """Queue an image-to-image job, or inpainting when a `mask` is sent (white = repaint, black = keep
    exactly); poll `GET /v1/images/jobs/{jobId}`."""
    image = await form.image.read() if form.image is not None else None
    mask = await form.mask.read() if form.mask is not None else None
    job = await submit_modify(context, tenant, form, image, mask, traceparent=traceparent)
    return _accepted(job, response)


def _accepted(job: GenerationJob, response: Response) -> JobAccepted:
    response.headers["Location"] = f"/v1/images/jobs/{job.jobId}"
    return JobAccepted(jobId=job.jobId, createdAt=job.createdAt)


@router.get("/jobs/{jobId}", response_model=JobView, response_model_exclude_none=True)
async def get_job(jobId: JobIdPath, tenant: TenantDep, context: ContextDep) -> JobView:
    """A job's status and, once completed, its images (presigned URLs)."""
    return await render_job(context, await _require_job(context, tenant, jobId))


@router.post(
    "/jobs/{jobId}/cancel",
    status_code=202,
    response_model=JobView,
    response_model_exclude_none=True,
    responses=error_responses(409),
)
async def cancel_job(jobId: JobIdPath, tenant: TenantDep, context: ContextDep) -> JobView:
    """Cancel: a queued job at once; a running one stops between two denoising steps, without images (poll
    for `failed` with error code `canceled`). 409 once it ended."""
    job = await cancel_generation(context, await _require_job(context, tenant, jobId))
    return await render_job(context, job)


async def _require_job(context: ServiceContext, tenant: str, job_id: str) -> GenerationJob:
    """The caller's live generation job, or 404 (another tenant's or a deleted one looks like none)."""
    job = await context.jobs.get_for_tenant(tenant, job_id)
    if not isinstance(job, GenerationJob) or job.deletedAt:
        raise ApiError(404, "job_not_found", f"job {job_id!r} does not exist", field="jobId")
    return job
