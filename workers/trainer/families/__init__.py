"""What differs between the model families a LoRA trains on (SD 1.5, SDXL, FLUX.1): one module each, behind the
`TrainingFamily` protocol the training loop drives.

Every family class is built the same way: `Family(pipeline, spec, params, device)` (the loaded pipeline, its base
model's registry entry, the training's parameters, and the device it runs on)."""

from __future__ import annotations

import importlib

import torch
from diffusers import DiffusionPipeline

from events.training import TrainingParameters
from infra.base_models import BaseModelSpec, Family
from workers.job_errors import BaseModelUnavailable
from workers.trainer.families.base import TrainingFamily


def family_for(
    pipeline: DiffusionPipeline, spec: BaseModelSpec, params: TrainingParameters, device: torch.device
) -> TrainingFamily:
    """The training side of `spec`'s family on `pipeline`."""
    from workers.trainer.families.sd import SdxlFamily, UNetFamily

    if spec.family is Family.SD15:
        return UNetFamily(pipeline, spec, params, device)  # type: ignore[arg-type]
    if spec.family is Family.SDXL:
        return SdxlFamily(pipeline, spec, params, device)  # type: ignore[arg-type]
    if spec.family is Family.FLUX:
        try:
            flux = importlib.import_module("workers.trainer.families.flux")
        except ModuleNotFoundError as exc:
            if exc.name != "workers.trainer.families.flux":
                raise
            raise BaseModelUnavailable(f"base model {spec.name!r}: this trainer cannot train FLUX yet") from exc
        return flux.FluxFamily(pipeline, spec, params, device)
    raise BaseModelUnavailable(f"base model {spec.name!r}: no trainer for family {spec.family}")
