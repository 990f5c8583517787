"""Fixtures for model-code tests: the tiny built-in base model, real diffusers and peft, on the CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline

from infra.base_models import TINY_SD_TARGETS
from tests.conftest import MODEL_CACHE
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.trainer import lora

PipelineFactory = Callable[[], StableDiffusionPipeline]


@pytest.fixture(scope="session")
def tiny_sd_path() -> Path:
    return ensure_tiny_sd(MODEL_CACHE)


@pytest.fixture(scope="session")
def load_tiny_sd(tiny_sd_path: Path) -> PipelineFactory:
    """Loads a fresh tiny-sd pipeline (each test that mutates one gets its own)."""

    def load() -> StableDiffusionPipeline:
        pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd_path)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    return load


def random_adapter(load: PipelineFactory, seed: int, rank: int = 4) -> bytes:
    """An adapter file with random weights, made on a throwaway tiny-sd pipeline."""
    return lora.random_adapter(load(), seed=seed, rank=rank, unet_targets=TINY_SD_TARGETS)


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
