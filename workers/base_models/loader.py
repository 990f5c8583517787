"""One loader for every base model: a built-in tiny one, a local folder or an s3:// prefix in diffusers' layout, or
one `.safetensors` checkpoint (local or s3://) with its family's configuration (workers/base_models/single_file.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoPipelineForText2Image, DiffusionPipeline

from infra.base_models import BUILTIN_PREFIX, BaseModelSpec, Family
from infra.settings import Settings
from workers.base_models.download import download_prefix
from workers.base_models.single_file import load_single_file, refuse_pickle, single_file_paths
from workers.base_models.tiny_flux import ensure_tiny_flux
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.base_models.tiny_sdxl import ensure_tiny_sdxl
from workers.base_models.tiny_shapes import ensure_tiny_shapes
from workers.job_errors import BaseModelUnavailable
from workers.module_construction import MODULE_CONSTRUCTION

log = logging.getLogger(__name__)

# The built-in tiny base models, by registry name: each builds its folder once into the model cache.
BUILTIN_BUILDERS: dict[str, Callable[[Path], Path]] = {
    "tiny-sd": ensure_tiny_sd,
    "tiny-sdxl": ensure_tiny_sdxl,
    "tiny-flux": ensure_tiny_flux,
    "tiny-shapes": ensure_tiny_shapes,
}


def pick_device(setting: str, family: Family | None = None) -> tuple[torch.device, torch.dtype]:
    """The device and dtype to run on: CUDA in half precision where there is one, else CPU in float32. FLUX.1 (and
    its T5) is bfloat16-native and overflows in float16: bfloat16 for it wherever the GPU has it."""
    if setting == "auto":
        setting = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(setting)
    if device.type != "cuda":
        return device, torch.float32
    if family is Family.FLUX and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16
    return device, torch.float16


def weights_dir(spec: BaseModelSpec, settings: Settings) -> Path:
    """A local folder with the model's diffusers layout, fetched or built as needed (not for a single file)."""
    refuse_pickle(spec)
    if spec.is_single_file:
        raise BaseModelUnavailable(f"base model {spec.name!r} is a single file, not a diffusers folder")
    if spec.is_builtin:
        return BUILTIN_BUILDERS[spec.source.removeprefix(BUILTIN_PREFIX)](settings.model_cache_dir)
    if spec.source.startswith("s3://"):
        return download_prefix(settings, spec.source, settings.model_cache_dir)
    path = Path(spec.source).expanduser()
    if not (path / "model_index.json").exists():
        raise BaseModelUnavailable(f"base model {spec.name!r}: no diffusers model at {path}")
    return path


def load_pipeline(spec: BaseModelSpec, settings: Settings) -> DiffusionPipeline:
    """Load a text-to-image pipeline for a base model, on the configured device."""
    device, dtype = pick_device(settings.torch_device, spec.family)
    try:
        # Fetched (and checked) before the construction lock: a download of gigabytes must not hold up every other
        # model construction in the process.
        files = single_file_paths(spec, settings) if spec.is_single_file else None
        folder = None if files is not None else weights_dir(spec, settings)
        with MODULE_CONSTRUCTION:
            if files is not None:
                pipeline = load_single_file(spec, *files, dtype)
            else:
                pipeline = AutoPipelineForText2Image.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    except BaseModelUnavailable:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise BaseModelUnavailable(f"base model {spec.name!r} could not be loaded: {exc}") from exc
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)
