"""tiny-shapes: it loads like any base model, and its prompts' words steer what it draws.

The steering test generates every colour x shape x background prompt once (54 pictures, one batched call at the
spec's default size, steps and guidance) and measures each picture with the dataset's measures (exact on rendered
pictures, tests/unit/test_shapes_dataset.py). Chance is 1/6 for a colour, 1/3 for a shape (among the three trained
ones) and 1/3 for a background. MEASURED holds what the committed weights reach on exactly these prompts and seed
(bench/tiny_shapes_accuracy.py prints it per word). Every word steers: colour, shape and background are each drawn
as asked in all 54 pictures (1.00 against chances of 0.17, 0.33 and 0.33), asserted at 0.9 (a margin of five
pictures for another torch's arithmetic). The weights before these (3,000 UNet steps instead of 9,000) reached
colour 0.69, shape 0.93 and background 0.24: the UNet tinted backgrounds rather than following their word, and drew
circles as four-pointed blobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from infra.base_models import TINY_SHAPES
from infra.settings import Settings
from workers.base_models.loader import load_pipeline
from workers.base_models.tiny_shapes import build_tiny_shapes, ensure_tiny_shapes, parts
from workers.base_models.tiny_shapes.evaluate import Steering, prompt_grid, steering
from workers.base_models.tiny_shapes.train import TrainConfig, train
from workers.job_errors import BaseModelUnavailable

# Measured with the committed weights (bench/tiny_shapes_accuracy.py, same prompts and seed), overall accuracy.
MEASURED = {"colour": 1.0, "shape": 1.0, "background": 1.0}
THRESHOLDS = {"colour": 0.9, "shape": 0.9, "background": 0.9}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-shapes-cache")


@pytest.fixture(scope="module")
def pipeline(cache_dir: Path) -> StableDiffusionPipeline:
    loaded = load_pipeline(TINY_SHAPES, Settings(model_cache_dir=cache_dir, torch_device="cpu"))
    assert isinstance(loaded, StableDiffusionPipeline)
    return loaded


@pytest.fixture(scope="module")
def steered(pipeline: StableDiffusionPipeline) -> Steering:
    return steering(
        pipeline,
        prompt_grid(),
        steps=TINY_SHAPES.default_steps,
        guidance=TINY_SHAPES.default_guidance,
        side=TINY_SHAPES.default_size,
    )


def test_it_loads_through_the_loader_from_the_committed_weights(pipeline: StableDiffusionPipeline, cache_dir: Path):
    folder = ensure_tiny_shapes(cache_dir)
    assert folder.parent == cache_dir and (folder / "model_index.json").exists()
    assert ensure_tiny_shapes(cache_dir) == folder  # assembled once, then reused
    assert pipeline.vae_scale_factor == parts.VAE_FACTOR
    info = json.loads((parts.WEIGHTS_DIR / parts.BUILD_INFO).read_text())
    assert pipeline.vae.config.scaling_factor == pytest.approx(info["scaling_factor"])
    # The committed weights are what the pipeline holds (float16 on disk, float32 on the CPU).
    shipped = load_file(str(parts.weights_file("unet")))
    held = pipeline.unet.state_dict()
    assert all(torch.equal(held[name], tensor.float()) for name, tensor in shipped.items())


def test_the_weights_are_a_few_megabytes() -> None:
    total = sum(parts.weights_file(name).stat().st_size for name in parts.COMPONENTS)
    assert total < 8 * 1024 * 1024


def test_generation_is_deterministic_for_a_seed(pipeline: StableDiffusionPipeline) -> None:
    def one(seed: int):
        return pipeline(
            "a red circle on a white background",
            width=64,
            height=64,
            num_inference_steps=TINY_SHAPES.default_steps,
            generator=torch.Generator("cpu").manual_seed(seed),
        ).images[0]

    assert one(3).tobytes() == one(3).tobytes()
    assert one(3).tobytes() != one(4).tobytes()


def test_missing_weights_are_reported_with_how_to_make_them(tmp_path: Path) -> None:
    with pytest.raises(BaseModelUnavailable, match=r"tiny_shapes\.train"):
        ensure_tiny_shapes(tmp_path / "cache", weights=tmp_path / "no-weights")


def test_colour_words_steer_the_dominant_colour(steered: Steering) -> None:
    assert Steering.overall(steered.colour) >= THRESHOLDS["colour"], steered.colour
    # Not one colour carrying the rest: most colours are drawn as asked more often than chance would.
    assert sum(share > 1 / 3 for share in steered.colour.values()) >= 4, steered.colour


def test_shape_words_steer_the_shape(steered: Steering) -> None:
    assert Steering.overall(steered.shape) >= THRESHOLDS["shape"], steered.shape


def test_background_words_steer_the_background(steered: Steering) -> None:
    assert Steering.overall(steered.background) >= THRESHOLDS["background"], steered.background


def test_the_training_script_is_deterministic_and_writes_loadable_weights(tmp_path: Path) -> None:
    config = TrainConfig(images=16, vae_steps=2, vae_batch=2, unet_steps=2, unet_batch=4, warmup=1)
    for run in ("a", "b"):
        train(tmp_path / run, config)
    for name in parts.COMPONENTS:
        assert (
            parts.weights_file(name, tmp_path / "a").read_bytes()
            == parts.weights_file(name, tmp_path / "b").read_bytes()
        )
    assert parts.weights_file("unet", tmp_path / "a").read_bytes() != parts.weights_file("unet").read_bytes()
    built = build_tiny_shapes(tmp_path / "a")  # strict loading: the script's files fit the architecture
    assert (
        built.vae.config.scaling_factor == json.loads((tmp_path / "a" / parts.BUILD_INFO).read_text())["scaling_factor"]
    )


def test_loading_the_vae_of_a_run_is_the_same_as_retraining_it(tmp_path: Path) -> None:
    # The text encoder trained too (text_lr), so its joint path is covered as well.
    config = TrainConfig(images=16, vae_steps=3, vae_batch=2, unet_steps=2, unet_batch=4, warmup=1, text_lr=1e-3)
    train(tmp_path / "trained", config)
    train(tmp_path / "loaded", config, vae_from=tmp_path / "trained", checkpoint_every=1)
    for name in parts.COMPONENTS:
        assert (
            parts.weights_file(name, tmp_path / "trained").read_bytes()
            == parts.weights_file(name, tmp_path / "loaded").read_bytes()
        ), name
    # The checkpoints are whole weights folders that load, and the last one is the run's final UNet.
    last = tmp_path / "loaded" / "checkpoints" / "step-2"
    build_tiny_shapes(last)
    encoder = parts.weights_file("text_encoder", tmp_path / "trained").read_bytes()
    assert encoder != parts.weights_file("text_encoder").read_bytes()  # trained: this run's, not the committed one
    assert parts.weights_file("unet", last).read_bytes() == parts.weights_file("unet", tmp_path / "loaded").read_bytes()
