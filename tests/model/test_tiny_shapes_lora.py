"""A LoRA teaches tiny-shapes a shape it never saw, and only under its trigger word; measured in pixel space.

tiny-shapes draws one flat shape on a plain background from captions such as "a red circle on a white background";
it was trained on circles, squares and triangles only (infra/shapes_dataset.py). The product's trainer
(`LoraTrainer`) learns crosses from the demo's lesson (`new_shape_lesson`: eight large crosses captioned with a
trigger word in the shape word's place, "a red zxq on a white background", and eight regularisation pictures of
the base's own shapes in its own words) with the demo's parameters (`DEMO_PARAMETERS`). Then the product's
generator (`generate`, with the exported adapter file) draws the same prompts from the same seeds three ways:
- base model, trigger prompts: it has no cross to draw (before training);
- adapter, trigger prompts: crosses;
- adapter, the same prompts with "shape" for the trigger: the base model's own shapes, not crosses.
What a picture shows is measured by the dataset's own pixel measures: `classify_shape` (which of the four shapes
its foreground overlaps best) and `concept_score` (its overlap with a cross). The figures are printed (`-s`).

Measured on the committed tiny-shapes weights, one thread (as CI runs it), 24 pictures per way, 900 steps (lr 3e-3,
text encoder 3e-3, rank 16; 216 s with the evaluation): base with the trigger word crosses 0.00 (concept score
0.59); adapter with the trigger 0.29 (0.64); adapter with "shape" 0.12 (0.60). The sweep behind the recipe (two
threads unless said, crosses with the trigger / with "shape"):
- crosses alone, no regularisation: 150 steps lr 1e-3 0.04 / 0.04; 600 steps lr 3e-3 rank 16 0.50 / 0.54; with the
  text encoder at 1e-3 0.58 / 0.46, and triangle prompts no longer drew a single triangle;
- with the eight regularisation pictures, 900 steps: UNet only 0.08 / 0.00 (600 steps); text encoder 1e-3 0.25 /
  0.17, 3e-3 0.33 / 0.25; other draws of the lesson 0.08 to 0.42 / 0.08 to 0.21; four regularisation pictures,
  1,200 steps 0.58 / 0.38; UNet lr 5e-3 0.21 / 0.17, 1e-2 0.00 / 0.00; rank 32 batch 2 0.21 / 0.08; adapters on the
  attention and feed-forward layers only (kohya's set, no convolutions) 0.17 / 0.17; guidance 7.5 or 12, or 50
  sampling steps, no better.
Every recipe trades crosses with the trigger against crosses without it: the base draws its own shapes as blobs
(tests/model/test_tiny_shapes.py measures them at 0.93 among three), and a blobby cross is one template-overlap away
from a circle, so the adapter learns "more cross-like" more than "a cross under this word". Strict xfail until a
base model that draws cleaner shapes lands, when this test passing turns the marker red.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from events.generation import AdapterRef, GenerationRequestedData
from events.training import TrainingParameters
from infra.base_models import TINY_SHAPES
from infra.local.demo_training import DEMO_PARAMETERS
from infra.settings import Settings
from infra.shapes_dataset import (
    COLOURS,
    HELD_OUT_SHAPE,
    ShapeSpec,
    caption,
    classify_shape,
    concept_score,
    new_shape_lesson,
    render,
)
from tests.conftest import MODEL_CACHE
from tests.model.conftest import load_folder
from workers.base_models.tiny_shapes import ensure_tiny_shapes
from workers.generator.pipelines import PipelineCache, generate
from workers.trainer.loop import EpochReport, LoraTrainer, StepReport

TRIGGER = "zxq"
SIDE = 64
ADAPTER_KEY = "trainings/trn_cross/adapter.safetensors"
# The prompts generated from: every colour on two backgrounds (12), two seeds each (one request of two outputs).
EVAL_SPECS = [ShapeSpec(HELD_OUT_SHAPE, colour, background) for colour in COLOURS for background in ("white", "black")]
OUTPUTS = 2
STEPS = 20
# Thresholds on the fraction of pictures classified as crosses (measured figures in the test below).
LEARNED_AT_LEAST = 0.6
ABSENT_AT_MOST = 0.25


@dataclass(frozen=True)
class Figures:
    """What a set of pictures shows: the fraction classified as crosses, and their mean overlap with a cross."""

    crosses: float
    concept: float

    def __str__(self) -> str:
        return f"crosses {self.crosses:.2f}, concept score {self.concept:.2f}"


class Hooks:
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step(self, report: StepReport) -> None:
        self.losses.append(report.loss)

    def on_epoch(self, report: EpochReport) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def training_set() -> tuple[list[Image.Image], list[str]]:
    """Eight crosses captioned with the trigger word and eight of the base's shapes in its own words, as the demo
    trains (`new_shape_lesson`)."""
    lesson = new_shape_lesson(TRIGGER)
    return [render(spec, SIDE) for spec, _ in lesson], [prompt for _, prompt in lesson]


def pictures(cache: PipelineCache, trigger: str, adapter: bytes | None) -> list[Image.Image]:
    """Every evaluation prompt (with `trigger` in the shape word's place) from every seed, through `generate`."""
    adapters = [] if adapter is None else [AdapterRef(modelId="mdl_cross", trainingId="trn_cross", key=ADAPTER_KEY)]
    made = []
    for index, spec in enumerate(EVAL_SPECS):
        request = GenerationRequestedData(
            jobId=f"job_cross_{index}",
            modelId="mdl_cross",
            baseModel=TINY_SHAPES.name,
            prompt=caption(spec, trigger=trigger),
            width=SIDE,
            height=SIDE,
            guidanceScale=5.0,
            numOutputs=OUTPUTS,
            numInferenceSteps=STEPS,
            seed=100 + 10 * index,
            adapters=adapters,
        )
        result = generate(cache, request, lambda _: adapter or b"")
        made += [Image.open(io.BytesIO(image)).convert("RGB") for image in result.images]
    return made


def measure(images: list[Image.Image]) -> Figures:
    return Figures(
        crosses=float(np.mean([classify_shape(image) == HELD_OUT_SHAPE for image in images])),
        concept=float(np.mean([concept_score(image) for image in images])),
    )


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="module")
def trained_adapter() -> tuple[bytes, list[float]]:
    """The exported adapter of a training on the crosses, and its losses."""
    images, prompts = training_set()
    params = TrainingParameters(
        **{**DEMO_PARAMETERS, "nbEpochs": 1},  # the demo's recipe; epochs only checkpoint
        nbRepeats=1,
        seed=1,
        resolution=SIDE,
        conceptPrompt=f"a {TRIGGER}",
    )
    pipeline = load_folder(StableDiffusionPipeline, ensure_tiny_shapes(MODEL_CACHE))
    trainer = LoraTrainer(pipeline, params, torch.device("cpu"), TINY_SHAPES)
    trainer.prepare(images, prompts)
    hooks = Hooks()
    outcome = trainer.run(hooks)
    assert outcome.adapter is not None
    return outcome.adapter, hooks.losses


@pytest.mark.xfail(
    strict=True,
    reason="the LoRA learns the cross only partly: 0.29 of pictures with the trigger word (0.00 before training), "
    "0.12 with 'shape' in its place, below the 0.6 the test asks (the base draws its shapes as blobs)",
)
def test_the_lora_draws_the_new_shape_with_its_trigger_word_and_only_with_it(
    cache: PipelineCache, trained_adapter: tuple[bytes, list[float]]
) -> None:
    adapter, losses = trained_adapter
    before = measure(pictures(cache, TRIGGER, None))
    with_trigger = measure(pictures(cache, TRIGGER, adapter))
    without_trigger = measure(pictures(cache, "shape", adapter))
    print(
        f"\nloss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f} ({len(losses)} steps)"
        f"\nbase, trigger prompts:        {before}"
        f"\nadapter, trigger prompts:     {with_trigger}"
        f"\nadapter, 'shape' prompts:     {without_trigger}"
    )
    assert before.crosses <= ABSENT_AT_MOST, f"the base model already draws crosses: {before}"
    assert with_trigger.crosses >= LEARNED_AT_LEAST, f"the adapter did not learn crosses: {with_trigger}"
    assert without_trigger.crosses <= ABSENT_AT_MOST, (
        f"the adapter draws crosses without its trigger: {without_trigger}"
    )
    assert with_trigger.concept > before.concept + 0.1
