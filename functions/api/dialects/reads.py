"""Reads that the views of several dialects need: a model's latest training, a queued training's place."""

from __future__ import annotations

from typing import Any

from infra.runtime import ServiceContext


async def latest_training(context: ServiceContext, model: dict[str, Any]) -> dict[str, Any] | None:
    """The model's most recent training record, if it ever trained."""
    return await context.trainings.get(model["trainingId"]) if model.get("trainingId") else None


async def queue_position(context: ServiceContext, training: dict[str, Any]) -> int:
    """How many trainings wait ahead of this queued one (the Scenario-style `position`, the custom-models
    API's `queuePosition`)."""
    return await context.trainings.count_queued_before(training["createdAt"])
