"""Which adapter file a trained model generates with."""

from __future__ import annotations

from typing import Any

from events.generation import AdapterRef
from events.storage_keys import training_epoch_keys


def model_adapter(model: dict[str, Any], scale: float = 1.0) -> AdapterRef:
    """The adapter a trained model generates with: its chosen epoch's checkpoint, else the final one."""
    training_id = model["adapterTrainingId"]
    epoch = model.get("epoch")
    key = training_epoch_keys(training_id, epoch)[0] if epoch else model["adapterKey"]
    return AdapterRef(modelId=model["modelId"], trainingId=training_id, key=key, scale=scale, epoch=epoch)
