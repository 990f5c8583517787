"""Fixtures for model-code tests: the tiny built-in base model, real diffusers and peft, on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from diffusers import DiffusionPipeline, FluxPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from infra.base_models import TINY_FLUX, TINY_SD_TARGETS, TINY_SDXL
from tests.conftest import MODEL_CACHE
from workers.base_models.tiny_flux import ensure_tiny_flux
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.base_models.tiny_sdxl import ensure_tiny_sdxl
from workers.module_construction import MODULE_CONSTRUCTION
from workers.trainer import lora

PipelineFactory = Callable[[], StableDiffusionPipeline]
AnyPipelineFactory = Callable[[], DiffusionPipeline]
P = TypeVar("P", bound=DiffusionPipeline)


def load_folder(pipeline_class: type[P], folder: Path) -> P:
    """A fresh pipeline from a diffusers folder, built under the workers' construction lock: the session's
    generator and trainer run in this process, and a load that overlaps theirs outside the lock can leave every
    later parameter on the meta device (workers/module_construction.py)."""
    with MODULE_CONSTRUCTION:
        pipeline = pipeline_class.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="session")
def tiny_sd_path() -> Path:
    return ensure_tiny_sd(MODEL_CACHE)


@pytest.fixture(scope="session")
def load_tiny_sd(tiny_sd_path: Path) -> PipelineFactory:
    """Loads a fresh tiny-sd pipeline (each test that mutates one gets its own)."""

    return lambda: load_folder(StableDiffusionPipeline, tiny_sd_path)


@pytest.fixture(scope="session")
def load_tiny_sdxl() -> Callable[[], StableDiffusionXLPipeline]:
    """Loads a fresh tiny-sdxl pipeline."""
    path = ensure_tiny_sdxl(MODEL_CACHE)

    return lambda: load_folder(StableDiffusionXLPipeline, path)


@pytest.fixture(scope="session")
def load_tiny_flux() -> Callable[[], FluxPipeline]:
    """Loads a fresh tiny-flux pipeline."""
    path = ensure_tiny_flux(MODEL_CACHE)

    return lambda: load_folder(FluxPipeline, path)


# The built-in base model's adapter targets, by pipeline class (random adapters for any family).
_TARGETS = {
    StableDiffusionPipeline: TINY_SD_TARGETS,
    StableDiffusionXLPipeline: TINY_SDXL.lora_targets,
    FluxPipeline: TINY_FLUX.lora_targets,
}


def random_adapter(load: AnyPipelineFactory, seed: int, rank: int = 4) -> bytes:
    """An adapter file with random weights, made on a throwaway pipeline of the family `load` makes."""
    pipeline = load()
    return lora.random_adapter(pipeline, seed=seed, rank=rank, unet_targets=_TARGETS[type(pipeline)])


def generate_latents(pipeline: StableDiffusionPipeline, prompt: str, steps: int, count: int = 1) -> torch.Tensor:
    """The UNet's output latents at 64 px from a fixed seed (tiny-sd's random VAE makes pixels useless)."""
    with torch.no_grad():
        return pipeline(
            prompt,
            width=64,
            height=64,
            num_inference_steps=steps,
            num_images_per_prompt=count,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="latent",
        ).images
