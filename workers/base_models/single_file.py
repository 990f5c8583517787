"""Base models given as one `.safetensors` checkpoint (the civitai kind), loaded with their family's configuration.

A single file holds weights only: the architecture of each component, the tokenizers and the scheduler come from
a diffusers folder of the same family (the entry's `config`, local or s3://). Diffusers' single-file loading does
the key conversion; with the configuration local and `local_files_only`, nothing is ever fetched from a hub.

What is supported:
- SD 1.5 and SDXL: a whole-pipeline checkpoint in the original (LDM/SGM) layout, or in diffusers' layout; the
  config folder needs every component's config, the tokenizers and the scheduler, no weights (a component the
  file lacks, such as a text encoder, is read from the folder, which must then hold its weights).
- FLUX.1: a transformer checkpoint (Black Forest Labs' layout at FLUX.1's real width, or diffusers' layout at any
  width); an all-in-one file is read for its transformer only. The VAE, both text encoders, tokenizers and the
  scheduler come from the config folder, which must hold their weights (a FLUX.1 diffusers folder, its
  transformer weights not needed).
- Pickle checkpoints (.ckpt, .pt, .pth, .bin) are refused: loading one can run arbitrary code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from diffusers import (
    DiffusionPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from diffusers.loaders.single_file_utils import SingleFileComponentError

from infra.base_models import BaseModelSpec, Family
from infra.settings import PICKLE_SUFFIXES, Settings
from workers.base_models.download import cache_path, download_file, download_prefix, file_sha256
from workers.job_errors import BaseModelUnavailable

log = logging.getLogger(__name__)

PIPELINE_CLASSES: dict[Family, type[DiffusionPipeline]] = {
    Family.SD15: StableDiffusionPipeline,
    Family.SDXL: StableDiffusionXLPipeline,
    Family.FLUX: FluxPipeline,
}


def refuse_pickle(spec: BaseModelSpec) -> None:
    """Raise `BaseModelUnavailable` for a base model whose source is a pickle checkpoint."""
    if spec.source.lower().endswith(PICKLE_SUFFIXES):
        raise BaseModelUnavailable(
            f"base model {spec.name!r}: {spec.source} is a pickle checkpoint, which can run code when loaded; "
            "convert it to .safetensors and point base_models at that"
        )


def checkpoint_path(spec: BaseModelSpec, settings: Settings) -> Path:
    """The checkpoint as a local file: downloaded into the model cache from s3://, checked against the entry's
    sha256 when it has one."""
    if spec.source.startswith("s3://"):
        destination = cache_path(settings.model_cache_dir, spec.source)
        return download_file(settings, spec.source, destination, sha256=spec.sha256)
    path = Path(spec.source).expanduser()
    if not path.is_file():
        raise BaseModelUnavailable(f"base model {spec.name!r}: no checkpoint file at {path}")
    if spec.sha256 is not None and (got := file_sha256(path)) != spec.sha256.lower():
        raise BaseModelUnavailable(
            f"base model {spec.name!r}: {path} sha256 mismatch, expected {spec.sha256.lower()}, got {got}"
        )
    return path


def config_path(spec: BaseModelSpec, settings: Settings) -> Path:
    """The local diffusers folder with the family's configuration (downloaded once from s3://)."""
    setting = f"base_models.{spec.name}.config"
    if spec.config is None:
        raise BaseModelUnavailable(
            f"base model {spec.name!r} is a single file and has no configuration: set {setting} to a diffusers "
            f"folder (local or s3://) of the {spec.family.value} family"
        )
    if spec.config.startswith("s3://"):
        folder = download_prefix(settings, spec.config, settings.model_cache_dir)
    else:
        folder = Path(spec.config).expanduser()
    if not (folder / "model_index.json").is_file():
        raise BaseModelUnavailable(f"base model {spec.name!r}: {setting} ({spec.config}) is no diffusers folder")
    return folder


def single_file_paths(spec: BaseModelSpec, settings: Settings) -> tuple[Path, Path]:
    """The checkpoint and its configuration folder as local paths: fetched and checked (no model built yet)."""
    refuse_pickle(spec)
    return checkpoint_path(spec, settings), config_path(spec, settings)


def load_single_file(spec: BaseModelSpec, checkpoint: Path, config: Path, dtype: torch.dtype) -> DiffusionPipeline:
    """The text-to-image pipeline of a single-file base model from its local paths (`single_file_paths`), on the
    CPU in `dtype`."""
    log.info("loading base model %s from %s with the configuration in %s", spec.name, checkpoint, config)
    try:
        if spec.family is Family.FLUX:
            transformer = FluxTransformer2DModel.from_single_file(
                str(checkpoint), config=str(config), subfolder="transformer", local_files_only=True, torch_dtype=dtype
            )
            return FluxPipeline.from_pretrained(config, transformer=transformer, local_files_only=True, dtype=dtype)
        return PIPELINE_CLASSES[spec.family].from_single_file(  # type: ignore[attr-defined]
            str(checkpoint), config=str(config), local_files_only=True, torch_dtype=dtype
        )
    except (SingleFileComponentError, RuntimeError, IndexError, KeyError, ValueError) as exc:
        # A file of another family or architecture than its configuration: missing components, mismatched shapes.
        raise BaseModelUnavailable(
            f"base model {spec.name!r}: {checkpoint} does not fit the {spec.family.value} configuration in {config}: "
            f"{exc}"
        ) from exc
