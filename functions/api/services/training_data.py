"""Training images: validated and normalized, stored in S3, recorded in DynamoDB. No FastAPI here."""

from __future__ import annotations

from events.lifecycle import JobError
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.training import MAX_TRAINING_IMAGES
from events.usecases.quotas import release_storage, require_image_room
from events.usecases.training_data import new_data_id, store_training_image
from functions.api.errors import ApiError
from infra.images import ImageRejected, NormalizedImage, normalize_upload
from infra.runtime import ServiceContext


async def validate_image(context: ServiceContext, data: bytes, field: str = "body") -> NormalizedImage:
    """The normalized image, or a 4xx naming what is wrong with it (decoding runs off the event loop)."""
    try:
        return await normalize_upload(context.settings, data, context.settings.max_image_bytes)
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, str(exc), field=field) from exc


async def store_image(
    context: ServiceContext, model: ModelRecord, image: NormalizedImage, data_id: str, name: str | None = None
) -> TrainingImageRecord:
    """Write the image's bytes, then its record (so a record always has its bytes)."""
    return await store_training_image(context, model.modelId, model.tenantId, image, data_id, name)


async def add_training_image(
    context: ServiceContext, model: ModelRecord, data: bytes, name: str | None = None, field: str = "body"
) -> TrainingImageRecord:
    """Validate and store one new training image (within the model's image quota and the tenant's storage)."""
    image = await validate_image(context, data, field)
    existing = await context.training_data.list(model.modelId)
    if len(existing) >= MAX_TRAINING_IMAGES:
        raise ApiError(
            409, "too_many_images", f"a model holds at most {MAX_TRAINING_IMAGES} training images", field=field
        )
    await require_image_room(context, model.tenantId, model.modelId)
    return await store_image(context, model, image, new_data_id(), name)


def counted_bytes(item: TrainingImageRecord) -> int:
    """The bytes an image counts for in its tenant's storage: what was sent, once it is stored (ready)."""
    return (item.bytes or 0) if item.status is UploadStatus.READY else 0


async def require_item(context: ServiceContext, model: ModelRecord, data_id: str) -> TrainingImageRecord:
    """One training image of the model, or 404."""
    item = await context.training_data.get(model.modelId, data_id)
    if item is None:
        raise ApiError(404, "data_not_found", f"training image {data_id!r} does not exist", field="dataId")
    return item


async def replace_training_image(
    context: ServiceContext, model: ModelRecord, item: TrainingImageRecord, data: bytes
) -> TrainingImageRecord:
    """Replace an image's bytes; it keeps its id and creation time. The old bytes stay for trainings that
    already listed them (content-addressed keys) until the model's artifacts are purged."""
    image = await validate_image(context, data)
    replaced = await store_image(context, model, image, item.dataId, item.name)
    # The new bytes were counted when stored; the old ones no longer count as the tenant's.
    await release_storage(context, model.tenantId, counted_bytes(item))
    return replaced


async def delete_training_image(context: ServiceContext, model: ModelRecord, item: TrainingImageRecord) -> None:
    """Remove an image for good: its record, then its bytes (a pending one's raw upload, if it landed)."""
    if item.status is UploadStatus.PENDING and item.uploadId:
        # Settled first, so bytes that land after the delete are not turned back into a training image.
        await context.uploads.settle(
            item.uploadId,
            UploadStatus.REJECTED,
            {"error": JobError(code="deleted", message="the training image was deleted before its file arrived")},
        )
    await context.training_data.delete(model.modelId, item.dataId)
    await context.store.delete(item.key)
    await release_storage(context, model.tenantId, counted_bytes(item))
