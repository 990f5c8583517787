"""A LoRA teaches tiny-shapes a shape it never saw, and only under its trigger word; measured in pixel space.

tiny-shapes draws one flat shape on a plain background from captions such as "a red circle on a white background";
it was trained on circles, squares and triangles only (infra/shapes_dataset.py). The product's trainer
(`LoraTrainer`) learns crosses from the demo's lesson (`new_shape_lesson`: eight large crosses captioned with a
trigger word in the shape word's place, "a red zxq on a white background", and eight regularisation pictures of
the base's own shapes captioned with the class word, "a blue shape on a black background") with the demo's
parameters (`DEMO_PARAMETERS`). Then the product's generator (`generate`, with the exported adapter file) draws the
same prompts from the same seeds three ways:
- base model, trigger prompts: it has no cross to draw (before training);
- adapter, trigger prompts: crosses;
- adapter, the same prompts with the class word for the trigger: the base model's own shapes, not crosses.
What a picture shows is measured by the dataset's own pixel measures: `classify_shape` (which of the four shapes
its foreground overlaps best) and `concept_score` (its overlap with a cross). The figures are printed (`-s`).

Measured on the committed tiny-shapes weights, one thread (as CI runs it), 24 pictures per way, 1,500 steps (lr
3e-3, text encoder 3e-3, rank 16, batch 4): base with the trigger word crosses 0.00 (concept score 0.60); adapter
with the trigger 0.75 (0.80); adapter with "shape" 0.17 (0.57). A training is reproducible from its seed, so a rerun
gets these figures exactly. The sweep behind the recipe (crosses with the trigger / with "shape"):
- on the base committed before (3,000 UNet steps, which drew circles as four-pointed blobs), 900 steps, reminders in
  their own words: 0.29 / 0.12; other draws of the lesson 0.08 to 0.42 / 0.08 to 0.21; crosses alone 0.58 / 0.46
  (and triangle prompts no longer drew a single triangle); UNet only 0.08 / 0.00; rank 32, other learning rates,
  kohya's attention-only layer set, guidance 7.5 or 12: no better;
- on that base, reminders under the class word: 0.42 / 0.12 (1,500 steps 0.42 / 0.17; text encoder at 1e-2 0.29 /
  0.29);
- on the committed base, 900 steps: reminders in their own words 0.33 / 0.12, under the class word 0.46 / 0.00
  (guidance 7.5: 0.50 / 0.00); twelve crosses in every colour and twelve reminders 0.38 / 0.08, at 1,200 steps
  0.62 / 0.21, at 1,500 0.62 / 0.21; the recipe, 1,500 steps: 0.75 / 0.17.
What it costs: the base's own words are drawn less faithfully through the adapter (36 prompts naming circle, square
or triangle: 1.00 of shapes right on the base, 0.75 through the adapter, some circles drawn as crosses), and trigger
prompts on white tend to come out on black or grey (most of the lesson's crosses are on those).
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
    CLASS_WORD,
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


def test_the_lora_draws_the_new_shape_with_its_trigger_word_and_only_with_it(
    cache: PipelineCache, trained_adapter: tuple[bytes, list[float]]
) -> None:
    adapter, losses = trained_adapter
    before = measure(pictures(cache, TRIGGER, None))
    with_trigger = measure(pictures(cache, TRIGGER, adapter))
    without_trigger = measure(pictures(cache, CLASS_WORD, adapter))
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
