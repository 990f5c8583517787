"""The loop's data side on the tiny models: images of three aspect ratios train in three buckets, each image's
caption reaches the text encoder, and a run resumed from an epoch's snapshot (mid-pass, with repeats) ends exactly
where the uninterrupted run does."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import load as load_safetensors

from events.training import TrainingParameters
from infra.base_models import TINY_SD, TINY_SDXL
from tests.model.conftest import PipelineFactory
from tests.model.test_training_learns import PROMPT, Recorder
from workers.trainer.loop import LoraTrainer


def params(**changes: object) -> TrainingParameters:
    base = dict(
        learningRate=1e-3,
        learningRateTextEncoder=0,
        maxTrainSteps=6,
        rank=4,
        batchSize=2,
        nbEpochs=1,
        nbRepeats=1,
        seed=3,
        resolution=64,
        conceptPrompt=PROMPT,
    )
    return TrainingParameters(**{**base, **changes})  # type: ignore[arg-type]


def shaped_images() -> list[Image.Image]:
    """A square, a 2:1 and a 1:2 image, each a noisy flat colour."""
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (96, 48), (48, 96), (64, 64), (96, 48), (48, 96)]  # (width, height)
    return [
        Image.fromarray(np.clip(np.array([200, 40, 40]) + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8))
        for w, h in sizes
    ]


def test_images_of_three_aspect_ratios_train_at_three_bucket_shapes(
    load_tiny_sdxl: Callable[[], StableDiffusionXLPipeline],
) -> None:
    trainer = LoraTrainer(load_tiny_sdxl(), params(), torch.device("cpu"), TINY_SDXL)
    trainer.prepare(shaped_images())
    shapes = [tuple(e.latents.shape[-2:]) for e in trainer.examples]
    assert len(set(shapes)) == 3
    wide, tall = shapes[1], shapes[2]
    assert wide[1] > wide[0] and tall == (wide[1], wide[0])  # the 2:1 image is wide, the 1:2 one its transpose
    # SDXL conditions on each image's geometry: its own size, and the bucket it trains at.
    assert [e.geometry.original_size for e in trainer.examples[:3]] == [(64, 64), (48, 96), (96, 48)]
    assert trainer.examples[1].geometry.target_size == (trainer.examples[1].bucket[1], trainer.examples[1].bucket[0])
    recorder = Recorder()
    outcome = trainer.run(recorder)
    assert outcome.steps == 6 and all(np.isfinite(recorder.losses))
    # Every batch comes from one bucket (so its latents stack): 6 images in batches of 2 is 3 batches a pass.
    assert len(trainer._pass) == 3
    assert all(len({trainer.examples[i].bucket for i in batch}) == 1 for batch in trainer._pass)


def test_without_buckets_every_image_is_cropped_square(load_tiny_sd: PipelineFactory) -> None:
    unbucketed = LoraTrainer(load_tiny_sd(), params(aspectRatioBuckets=False), torch.device("cpu"), TINY_SD)
    unbucketed.prepare(shaped_images()[:3])
    assert {tuple(e.latents.shape[-2:]) for e in unbucketed.examples} == {(8, 8)}
    assert {e.bucket for e in unbucketed.examples} == {(64, 64)}


def test_a_changed_caption_changes_that_images_conditioning_and_only_its(load_tiny_sd: PipelineFactory) -> None:
    images = shaped_images()[:3]
    captions = [f"{PROMPT}, red square", f"{PROMPT}, red banner", f"{PROMPT}, red tower"]

    def conditioning_of(prompts: list[str]) -> list[torch.Tensor]:
        trainer = LoraTrainer(load_tiny_sd(), params(), torch.device("cpu"), TINY_SD)
        trainer.prepare(images, prompts)
        return [trainer.conditioning([e.prompt]).tensors["hidden"] for e in trainer.examples]

    before = conditioning_of(captions)
    after = conditioning_of([captions[0], f"{PROMPT}, blue banner", captions[2]])
    assert not torch.equal(before[1], after[1])
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.equal(before[0], before[2])  # each image has its own conditioning, not the concept prompt's


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(load_tiny_sd: PipelineFactory) -> None:
    # 3 images x 2 repeats in batches of 2, three buckets: 3 batches a pass; the first epoch ends after 4 steps,
    # one batch into the second pass, whose order must come back from the snapshot.
    run = params(maxTrainSteps=8, nbEpochs=2, nbRepeats=2, randomCrop=True)
    images = shaped_images()[:3]

    def trainer() -> LoraTrainer:
        t = LoraTrainer(load_tiny_sd(), run, torch.device("cpu"), TINY_SD)
        t.prepare(images)
        return t

    whole = Recorder()
    uninterrupted = trainer().run(whole)
    resumed = trainer().run(Recorder(), resume=whole.epochs[0].snapshot)
    assert resumed.resumed_from_step == 4 and resumed.steps == 8
    assert uninterrupted.adapter is not None and resumed.adapter is not None
    expected, got = load_safetensors(uninterrupted.adapter), load_safetensors(resumed.adapter)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_a_run_resumed_without_a_deleted_image_starts_a_new_pass(load_tiny_sd: PipelineFactory) -> None:
    # The snapshot's pass names three images by position; the resumed run has two (one was deleted meanwhile):
    # it must not index past them or pair a batch across buckets, but train on what is left.
    run = params(maxTrainSteps=8, nbEpochs=2, nbRepeats=2)
    images = shaped_images()[:3]
    first = LoraTrainer(load_tiny_sd(), run, torch.device("cpu"), TINY_SD)
    first.prepare(images, keys=["a", "b", "c"])
    recorder = Recorder()
    first.run(recorder)
    second = LoraTrainer(load_tiny_sd(), run, torch.device("cpu"), TINY_SD)
    second.prepare(images[1:], keys=["b", "c"])
    resumed = second.run(Recorder(), resume=recorder.epochs[0].snapshot)
    assert resumed.resumed_from_step == 4 and resumed.steps == 8 and resumed.adapter is not None
