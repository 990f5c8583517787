"""Storing a validated training image: shared by the API (direct uploads) and the notification handler
(presigned uploads)."""

from __future__ import annotations

import asyncio
from typing import Any

from events.storage_keys import model_data_key
from infra.images import NormalizedImage, normalize_image
from infra.runtime import ServiceContext
from infra.settings import Settings


async def normalize_upload(settings: Settings, data: bytes, max_bytes: int) -> NormalizedImage:
    """Validate and normalize uploaded bytes with the configured limits, off the event loop; raises
    ImageRejected with the reason."""
    return await asyncio.to_thread(
        normalize_image,
        data,
        max_bytes=max_bytes,
        max_pixels=settings.max_image_pixels,
        max_side=settings.training_image_max_side,
    )


async def store_training_image(
    context: ServiceContext,
    model_id: str,
    tenant_id: str,
    image: NormalizedImage,
    data_id: str,
    name: str | None = None,
) -> dict[str, Any]:
    """Write the image's bytes, then its `ready` record (so a ready record always has its bytes)."""
    key = model_data_key(model_id, data_id, image.sha256)
    await context.store.put_bytes(key, image.png, "image/png")
    return await context.training_data.put(
        {
            "modelId": model_id,
            "dataId": data_id,
            "tenantId": tenant_id,
            "key": key,
            "width": image.width,
            "height": image.height,
            "format": image.source_format,
            "bytes": image.source_bytes,
            "sha256": image.sha256,
            "name": name,
            "status": "ready",
        }
    )
