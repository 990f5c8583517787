"""Custom-models routes: `POST /v1/predictions`, `GET /v1/predictions/{predictionId}`, `POST …/cancel`, `DELETE`
(soft)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from functions.api.dependencies import ContextDep, PredictionIdPath, TenantDep, TraceparentDep
from functions.api.dialects.custom_models import render_prediction
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.predictions import CreatePredictionRequest, PredictionAccepted, PredictionView
from functions.api.services import predictions as service
from functions.api.services.jobs import cancel_generation

router = APIRouter(prefix="/v1/predictions", tags=["predictions"], responses=ERROR_RESPONSES)


@router.post("", status_code=202, response_model=PredictionAccepted, responses=error_responses(404, 409))
async def create_prediction(
    body: CreatePredictionRequest,
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: TraceparentDep,
) -> PredictionAccepted:
    """Generate with one or more trained models mixed by weight; poll `GET /v1/predictions/{predictionId}`."""
    job = await service.submit_prediction(context, tenant, body, traceparent=traceparent)
    response.headers["Location"] = f"/v1/predictions/{job.jobId}"
    return PredictionAccepted(predictionId=job.jobId, createdAt=job.createdAt)


@router.get("/{predictionId}", response_model=PredictionView, response_model_exclude_none=True)
async def get_prediction(predictionId: PredictionIdPath, tenant: TenantDep, context: ContextDep) -> PredictionView:
    """A prediction's status and, once succeeded, its `outputImages` (presigned URLs)."""
    job = await service.require_prediction(context, tenant, predictionId)
    return await render_prediction(context, job)


@router.post(
    "/{predictionId}/cancel",
    status_code=202,
    response_model=PredictionView,
    response_model_exclude_none=True,
    responses=error_responses(409),
)
async def cancel_prediction(predictionId: PredictionIdPath, tenant: TenantDep, context: ContextDep) -> PredictionView:
    """Cancel: a starting prediction at once; a processing one stops between two denoising steps, without
    images (poll for `canceled`). 409 once it ended."""
    job = await service.require_prediction(context, tenant, predictionId)
    updated = await cancel_generation(context, job, field="predictionId")
    return await render_prediction(context, updated)


@router.delete("/{predictionId}", status_code=204)
async def delete_prediction(predictionId: PredictionIdPath, tenant: TenantDep, context: ContextDep) -> Response:
    """The custom-models API's soft delete: the prediction is gone from the API; its history is kept."""
    job = await service.require_prediction(context, tenant, predictionId)
    await service.delete_prediction(context, job)
    return Response(status_code=204)
