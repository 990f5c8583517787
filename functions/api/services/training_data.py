"""Training images: validated and normalized, stored in S3, recorded in DynamoDB. No FastAPI here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from events.lifecycle import JobError
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.training import MAX_TRAINING_IMAGES
from events.usecases.quotas import release_storage, require_image_room
from events.usecases.training_data import new_data_id, store_training_image
from functions.api.errors import ApiError
from functions.api.schemas.trainings import MAX_IMAGE_DESCRIPTION
from infra.images import ImageRejected, NormalizedImage, normalize_upload
from infra.runtime import ServiceContext


async def validate_image(context: ServiceContext, data: bytes, field: str = "body") -> NormalizedImage:
    """The normalized image, or a 4xx naming what is wrong with it (decoding runs off the event loop)."""
    try:
        return await normalize_upload(context.settings, data, context.settings.max_image_bytes)
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, str(exc), field=field) from exc


async def store_image(
    context: ServiceContext,
    model: ModelRecord,
    image: NormalizedImage,
    data_id: str,
    name: str | None = None,
    description: str | None = None,
) -> TrainingImageRecord:
    """Write the image's bytes, then its record (so a record always has its bytes)."""
    return await store_training_image(
        context, model.modelId, model.tenantId, image, data_id, name, description=description
    )


def clean_description(description: str | None, field: str = "description") -> str | None:
    """A caption as stored: stripped, None when blank; 422 when longer than a training prompt leaves room for."""
    if description is None or not description.strip():
        return None
    if len(description) > MAX_IMAGE_DESCRIPTION:
        raise ApiError(422, "validation_error", f"{field}: at most {MAX_IMAGE_DESCRIPTION} characters", field=field)
    return description.strip()


async def add_training_image(
    context: ServiceContext,
    model: ModelRecord,
    data: bytes,
    name: str | None = None,
    field: str = "body",
    description: str | None = None,
) -> TrainingImageRecord:
    """Validate and store one new training image (within the model's image quota and the tenant's storage), with
    its caption if it has one."""
    description = clean_description(description)
    image = await validate_image(context, data, field)
    existing = await context.training_data.list(model.modelId)
    if len(existing) >= MAX_TRAINING_IMAGES:
        raise ApiError(
            409, "too_many_images", f"a model holds at most {MAX_TRAINING_IMAGES} training images", field=field
        )
    await require_image_room(context, model.tenantId, model.modelId)
    return await store_image(context, model, image, new_data_id(), name, description)


CAPTION_SUFFIX = ".txt"
MAX_CAPTION_FILE_BYTES = 8 * 1024


def is_caption_file(filename: str | None) -> bool:
    """Whether a multipart file is a caption sidecar (`cat1.txt` beside `cat1.png`), not an image."""
    return bool(filename) and PurePosixPath(filename or "").suffix.lower() == CAPTION_SUFFIX


def _stem(filename: str | None) -> str | None:
    return PurePosixPath(filename).stem if filename else None


def caption_of_file(filename: str, data: bytes, field: str) -> str | None:
    """A sidecar's caption; 422 naming the file when it is too large or not UTF-8 text."""
    if len(data) > MAX_CAPTION_FILE_BYTES:
        raise ApiError(
            422,
            "caption_too_large",
            f"{field} ({filename}): a caption file holds at most {MAX_CAPTION_FILE_BYTES} bytes",
            field=field,
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            422, "caption_not_text", f"{field} ({filename}): a caption file must be UTF-8 text", field=field
        ) from exc
    return clean_description(text, field=f"{field} ({filename})")


def pair_captions(image_names: Sequence[str | None], sidecars: Sequence[tuple[str, str, bytes]]) -> list[str | None]:
    """Each image's caption from the sidecars (field, file name, bytes) named like it, without the extension
    (`cat1.png` takes `cat1.txt`); 422 naming a sidecar that is not a caption (too large, not UTF-8) or that no
    image is named like."""
    captions = {PurePosixPath(name).stem: (field, caption_of_file(name, data, field)) for field, name, data in sidecars}
    stems = [_stem(name) for name in image_names]
    for stem, (field, _) in captions.items():
        if stem not in stems:
            raise ApiError(
                422,
                "caption_without_image",
                f"{field} ({stem}{CAPTION_SUFFIX}): no image is named {stem}.*; a caption file is named like "
                "its image (cat1.txt for cat1.png)",
                field=field,
            )
    return [captions[stem][1] if stem in captions else None for stem in stems]


async def describe_training_image(
    context: ServiceContext, model: ModelRecord, item: TrainingImageRecord, description: str | None
) -> TrainingImageRecord:
    """Set (or, blank, remove) an image's caption; the next training trains the image on it. A training already
    queued keeps the captions it was started with (they are in its command)."""
    described = await context.training_data.set_description(model.modelId, item.dataId, clean_description(description))
    if described is None:
        raise ApiError(404, "data_not_found", f"training image {item.dataId!r} does not exist", field="dataId")
    return described


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
    replaced = await store_image(context, model, image, item.dataId, item.name, item.description)
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
