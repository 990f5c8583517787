"""What a training's end does to its model: shared by the API (cancel of a queued training) and the
notification handler (a worker's markers)."""

from __future__ import annotations

from typing import Any

from events.states import MODEL_STATUS_AFTER_TRAINING, TrainingStatus
from infra.repositories.versioned import Advance
from infra.runtime import ServiceContext


async def settle_model(
    context: ServiceContext, training: dict[str, Any], outcome: TrainingStatus, fields: dict[str, Any] | None = None
) -> Advance | None:
    """Move the model out of `training` to the status `outcome` implies, if this training is still the
    model's current one (a late marker of an older training must not touch a newer one's model)."""
    model = await context.models.get(training["modelId"])
    if model is None or model.get("trainingId") != training["jobId"]:
        return None
    return await context.models.advance(model["modelId"], MODEL_STATUS_AFTER_TRAINING[outcome], fields)
