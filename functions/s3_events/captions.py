"""A training's captions marker: each automatic caption recorded on its training image, for the API to show."""

from __future__ import annotations

import logging

from events.captions_marker import AutomaticCaptions
from events.storage_keys import parse_model_data_key
from events.training import MAX_CAPTION
from functions.s3_events.markers import MarkerError
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


async def apply_captions(context: ServiceContext, key: str, training_id: str) -> int:
    """Record the captions of `trainings/{training_id}/captions.json` on their images; returns how many records
    changed (0 for a redelivered notification; an image deleted or replaced since is skipped)."""
    body = await context.store.get_json(key)
    if body is None:
        raise MarkerError(f"marker {key} does not exist")
    marker = AutomaticCaptions.model_validate(body)
    if marker.trainingId != training_id:
        raise MarkerError(f"marker {key} is of training {marker.trainingId}")
    changed = 0
    for data_key, caption in sorted(marker.captions.items()):
        image = parse_model_data_key(data_key)
        if image is None:
            log.warning("captions of %s: %s is no training image's key", training_id, data_key)
            continue
        model_id, data_id = image
        if await context.training_data.record_automatic_caption(model_id, data_id, data_key, caption[:MAX_CAPTION]):
            changed += 1
    log.info("training %s: %d automatic caption(s) recorded of %d", training_id, changed, len(marker.captions))
    return changed
