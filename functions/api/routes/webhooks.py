"""Webhook routes: the tenant's signing secret (and its rotation), a job's deliveries, re-sending one."""

from __future__ import annotations

from fastapi import APIRouter

from events.records.jobs import Job
from functions.api.dependencies import ContextDep, DeliveryIdPath, JobIdPath, TenantDep
from functions.api.errors import ApiError
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.webhooks import DeliveryOut, WebhookSecretOut
from functions.api.services import webhooks as service
from infra.runtime import ServiceContext

router = APIRouter(prefix="/v1", tags=["webhooks"], responses=ERROR_RESPONSES)


@router.get("/webhooks/secret", response_model=WebhookSecretOut, response_model_exclude_none=True)
async def get_secret(tenant: TenantDep, context: ContextDep) -> WebhookSecretOut:
    """The `whsec_…` secret that signs this account's deliveries (Standard Webhooks); made on first use."""
    return await service.signing_secret(context, tenant)


@router.post("/webhooks/secret/rotate", response_model=WebhookSecretOut, response_model_exclude_none=True)
async def rotate_secret(tenant: TenantDep, context: ContextDep) -> WebhookSecretOut:
    """A new secret; deliveries carry signatures of both until `previousValidUntil`, so receivers can switch."""
    return await service.signing_secret(context, tenant, rotate=True)


async def _job(context: ServiceContext, tenant: str, job_id: str) -> Job:
    job = await context.jobs.get_for_tenant(tenant, job_id)
    if job is None or job.deletedAt:
        raise ApiError(404, "job_not_found", f"job {job_id!r} does not exist", field="jobId")
    return job


@router.get("/jobs/{jobId}/deliveries", response_model=list[DeliveryOut], response_model_exclude_none=True)
async def list_deliveries(jobId: JobIdPath, tenant: TenantDep, context: ContextDep) -> list[DeliveryOut]:
    """A job's (generation, prediction, training or portrait) webhook deliveries and every attempt's outcome."""
    return await service.job_deliveries(context, await _job(context, tenant, jobId))


@router.post(
    "/jobs/{jobId}/deliveries/{deliveryId}/resend", response_model=DeliveryOut, response_model_exclude_none=True
)
async def resend_delivery(
    jobId: JobIdPath, deliveryId: DeliveryIdPath, tenant: TenantDep, context: ContextDep
) -> DeliveryOut:
    """Send a delivery again now (same `webhook-id`, fresh retry schedule); answers with its new attempt."""
    return await service.resend(context, await _job(context, tenant, jobId), deliveryId)
