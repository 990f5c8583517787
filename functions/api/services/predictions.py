"""The custom-models API's predictions: several trained models mixed by weight. No FastAPI here; the view is in
functions/api/dialects/custom_models.py."""

from __future__ import annotations

from events.envelope import utcnow
from events.records.jobs import GenerationJob
from events.states import JobKind
from events.usecases.quotas import require_job_slot
from functions.api.errors import ApiError
from functions.api.schemas.predictions import MIN_PREDICTION_SIDE, CreatePredictionRequest
from functions.api.services.adapters import combine, training_adapter
from functions.api.services.generation import (
    GenerationOptions,
    build_generation,
    new_job_id,
    queue,
)
from functions.api.services.webhooks import webhook_record
from infra.runtime import ServiceContext


async def submit_prediction(
    context: ServiceContext, tenant_id: str, body: CreatePredictionRequest, traceparent: str | None = None
) -> GenerationJob:
    """Check every model and training, then queue one generation mixing their adapters by weight (recorded
    with the request's scaleConfigs labels, which make the job a prediction)."""
    webhook = webhook_record(context, body)
    choices = [
        await training_adapter(
            context, tenant_id, config.modelId, config.trainingId, scale=config.scale, field=f"scaleConfigs.{label}"
        )
        for label, config in body.scaleConfigs.items()
    ]
    resolved = combine(context, choices, "scaleConfigs")
    size = body.image_size
    options = GenerationOptions(
        # The job's model is the first model mixed: the one a listing by model shows it under.
        model_id=choices[0].adapter.modelId,
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        width=size.width if size else max(MIN_PREDICTION_SIDE, resolved.spec.default_size),
        height=size.height if size else max(MIN_PREDICTION_SIDE, resolved.spec.default_size),
        guidance_scale=body.guidance_scale,
        num_outputs=body.num_images,
        num_inference_steps=body.num_inference_steps,
        seed=body.seed,
        output_format=body.output_format,
        size_fields=("image_size.width", "image_size.height"),
    )
    data = build_generation(new_job_id(), options, resolved)
    await require_job_slot(context, tenant_id, JobKind.GENERATION)
    labels = list(body.scaleConfigs)
    return await queue(context, tenant_id, data, traceparent, extra={"scaleConfigLabels": labels, **webhook})


async def require_prediction(context: ServiceContext, tenant_id: str, prediction_id: str) -> GenerationJob:
    """The caller's live prediction, or 404 (another tenant's, a deleted one, or a generation that is no
    prediction looks like none)."""
    job = await context.jobs.get_for_tenant(tenant_id, prediction_id)
    if not isinstance(job, GenerationJob) or job.scaleConfigLabels is None or job.deletedAt:
        raise ApiError(
            404, "prediction_not_found", f"prediction {prediction_id!r} does not exist", field="predictionId"
        )
    return job


async def delete_prediction(context: ServiceContext, job: GenerationJob) -> None:
    """The custom-models API's soft delete: the prediction disappears from the API, its record and images stay."""
    await context.jobs.update_fields(job.jobId, {"deletedAt": utcnow().isoformat()})
