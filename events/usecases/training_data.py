"""Storing a training image that an adapter already validated and normalized: shared by the API (direct
uploads), the portrait flow (its photos) and the notification handler (presigned uploads)."""

from __future__ import annotations

import secrets
from typing import Any

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.storage_keys import model_data_key
from events.usecases.ports import Backends, NormalizedImage


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
    backends: Backends,
    model_id: str,
    tenant_id: str,
    image: NormalizedImage,
    data_id: str,
    name: str | None = None,
) -> TrainingImageRecord:
    """Write the image's bytes, then its `ready` record (so a ready record always has its bytes)."""
    key = model_data_key(model_id, data_id, image.sha256)
    await backends.store.put_bytes(key, image.png, "image/png")
    return await backends.training_data.put(
        TrainingImageRecord(
            modelId=model_id,
            dataId=data_id,
            tenantId=tenant_id,
            key=key,
            name=name,
            **image_facts(image),
            status=UploadStatus.READY,
        )
    )
