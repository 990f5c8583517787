"""Seed 002 routes: `POST /v1/images/generate`, `GET /v1/images/jobs/{jobId}`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response

from events.envelope import is_valid_traceparent
from functions.api.dependencies import ContextDep, TenantDep
from functions.api.errors import ApiError
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.images import GenerateImageRequest, JobAccepted, JobView
from functions.api.services.generation import render_job, submit_generation

router = APIRouter(prefix="/v1/images", tags=["images"], responses=ERROR_RESPONSES)

JobIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post("/generate", status_code=202, response_model=JobAccepted)
async def generate_image(
    body: GenerateImageRequest,
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: Annotated[str | None, Header()] = None,
) -> JobAccepted:
    """Queue a text-to-image job; poll `GET /v1/images/jobs/{jobId}` for the result."""
    job = await submit_generation(
        context, tenant, body, traceparent=traceparent if is_valid_traceparent(traceparent) else None
    )
    response.headers["Location"] = f"/v1/images/jobs/{job['jobId']}"
    return JobAccepted(jobId=job["jobId"], createdAt=job["createdAt"])


@router.get("/jobs/{jobId}", response_model=JobView, response_model_exclude_none=True)
async def get_job(jobId: JobIdPath, tenant: TenantDep, context: ContextDep) -> JobView:
    """A job's status and, once completed, its images (presigned URLs)."""
    job = await context.jobs.get_for_tenant(tenant, jobId)
    if job is None or job.get("kind") != "generation":
        raise ApiError(404, "job_not_found", f"job {jobId!r} does not exist", field="jobId")
    return await render_job(context, job)
