"""Which adapter file a trained model generates with."""

from __future__ import annotations

from events.generation import AdapterRef
from events.records.models import ModelRecord
from events.storage_keys import training_epoch_keys


def model_adapter(model: ModelRecord, scale: float = 1.0) -> AdapterRef:
    """The adapter a trained model generates with: its chosen epoch's checkpoint, else the final one (a
    model without a trained adapter has none: ValueError)."""
    training_id = model.adapterTrainingId
    epoch = model.epoch
    key = training_epoch_keys(training_id, epoch)[0] if training_id and epoch else model.adapterKey
    if training_id is None or key is None:
        raise ValueError(f"model {model.modelId!r} has no trained adapter")
    return AdapterRef(modelId=model.modelId, trainingId=training_id, key=key, scale=scale, epoch=epoch)
