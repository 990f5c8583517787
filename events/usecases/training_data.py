"""Storing a training image that an adapter already validated and normalized: shared by the API (direct
uploads), the portrait flow (its photos) and the notification handler (presigned uploads)."""

from __future__ import annotations

import secrets
from typing import Any

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.storage_keys import model_data_key
from events.usecases.ports import NormalizedImage, QuotaAwareBackends
from events.usecases.quotas import release_storage, reserve_storage


def image_facts(image: NormalizedImage) -> dict[str, Any]:
    """The `ValidatedImage` fields of a record, from the image validation produced."""
    return {
        "width": image.width,
        "height": image.height,
        "format": image.source_format,
        "bytes": image.source_bytes,
        "sha256": image.sha256,
    }


def new_data_id() -> str:
    """A fresh training-image id."""
    return f"dat_{secrets.token_hex(8)}"


async def store_training_image(
    backends: QuotaAwareBackends,
    model_id: str,
    tenant_id: str,
    image: NormalizedImage,
    data_id: str,
    name: str | None = None,
    *,
    reserved: bool = False,
    description: str | None = None,
) -> TrainingImageRecord:
    """Count the image's bytes against the tenant's storage (unless the caller `reserved` them already;
    `QuotaExceeded` before anything is written when they do not fit), then write the bytes, then the `ready`
    record (so a ready record always has its bytes). What counts is the size the tenant sent (`bytes`).
    `description` is the image's caption (what it trains on, with the trigger word woven in)."""
    if not reserved:
        await reserve_storage(backends, tenant_id, image.source_bytes)
    key = model_data_key(model_id, data_id, image.sha256)
    try:
        await backends.store.put_bytes(key, image.png, "image/png")
        return await backends.training_data.put(
            TrainingImageRecord(
                modelId=model_id,
                dataId=data_id,
                tenantId=tenant_id,
                key=key,
                name=name,
                description=description,
                **image_facts(image),
                status=UploadStatus.READY,
            )
        )
    except Exception:
        if not reserved:  # a caller that reserved gives back what it reserved
            await release_storage(backends, tenant_id, image.source_bytes)
        raise
