"""Training learns, not only runs: a short training on a distinctive image set moves tiny-sd's generations
toward it, measured in latent space.

Why latents and not pixel colours: tiny-sd's VAE has random weights and decodes nearly every latent to the same
grey, so colours of decoded images cannot tell a trained model from the base one. The UNet's output latents are
what the adapter changes, and the training images have exact latents (the trainer's own VAE encoding).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load

from events.generation import AdapterRef
from events.training import TrainingParameters
from infra.base_models import TINY_SD
from tests.model.conftest import PipelineFactory, generate_latents
from workers.generator.adapters import AdapterCache
from workers.trainer.loop import EpochReport, LoraTrainer, StepReport

PROMPT = "a photo of lfzq"


class Recorder:
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.epochs: list[EpochReport] = []

    def on_step(self, report: StepReport) -> None:
        self.losses.append(report.loss)

    def on_epoch(self, report: EpochReport) -> None:
        self.epochs.append(report)

    def should_stop(self) -> bool:
        return False


def red_images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(np.clip(np.array([220, 30, 30]) + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8))
        for _ in range(count)
    ]


def distance(generated: torch.Tensor, target: torch.Tensor) -> float:
    """RMS distance between the mean generated latent and the mean training latent."""
    return float(((generated.mean(0) - target.mean(0)) ** 2).mean().sqrt())


def test_a_short_training_moves_generations_toward_the_training_set(load_tiny_sd: PipelineFactory) -> None:
    params = TrainingParameters(
        learningRate=1e-3,
        learningRateTextEncoder=0,
        maxTrainSteps=120,
        rank=8,
        batchSize=4,
        nbEpochs=2,
        nbRepeats=1,
        seed=1,
        resolution=64,
        conceptPrompt=PROMPT,
    )
    trainer = LoraTrainer(load_tiny_sd(), params, torch.device("cpu"), TINY_SD)
    trainer.prepare(red_images(4))
    recorder = Recorder()
    outcome = trainer.run(recorder)
    assert outcome.adapter is not None and outcome.steps == 120
    assert [e.epoch for e in recorder.epochs] == [1, 2]
    assert recorder.losses[-1] < 0.7 * recorder.losses[0], f"loss did not fall: {recorder.losses[::10]}"

    # Generate through the generator's own adapter path, from the exported file.
    pipeline = load_tiny_sd()
    cache = AdapterCache(pipeline, budget_bytes=1 << 30)
    target = trainer.instance_latents
    assert target is not None

    def generate() -> torch.Tensor:
        return generate_latents(pipeline, PROMPT, steps=10, count=4)

    before = distance(generate(), target)
    adapter = AdapterRef(modelId="mod_x", trainingId="t", key="trainings/t/adapter.safetensors")
    cache.activate([adapter], lambda _: outcome.adapter)
    after = distance(generate(), target)
    print(f"loss {recorder.losses[0]:.3f} -> {recorder.losses[-1]:.3f}; distance {before:.2f} -> {after:.2f}")
    # Measured: 4.48 -> 2.12 at 120 steps, seed 1, loss 1.20 -> 0.35 (the family loop; before it 2.00..2.09 for seeds
    # 1..3: the data order is now passes without replacement). Under 0.6x leaves room for thread counts.
    assert after < 0.6 * before, f"generations did not move toward the training set: {before:.2f} -> {after:.2f}"

    # The first epoch's checkpoint is a real, loadable adapter too, and lies between base and final.
    halfway = AdapterRef(modelId="mod_x", trainingId="t", key="trainings/t/checkpoints/000001/adapter.safetensors")
    cache.activate([halfway], lambda _: recorder.epochs[0].adapter)
    middle = distance(generate(), target)
    assert middle < before


def test_a_training_is_reproducible_from_its_seed(load_tiny_sd: PipelineFactory) -> None:
    """The same parameters and seed give the same adapter, bit for bit; another seed another one. Everything random
    in a training (the LoRA layers' initial weights included, which peft draws from torch's global generator) comes
    from the training's seed, so a figure measured on a training is the figure the next run of it gets."""

    def train(seed: int, global_state: int) -> dict[str, torch.Tensor]:
        params = TrainingParameters(
            learningRate=1e-3,
            learningRateTextEncoder=1e-3,
            maxTrainSteps=3,
            rank=4,
            batchSize=2,
            nbEpochs=1,
            nbRepeats=1,
            seed=seed,
            resolution=64,
            conceptPrompt=PROMPT,
        )
        torch.manual_seed(global_state)  # whatever state the process's global generator is left in
        trainer = LoraTrainer(load_tiny_sd(), params, torch.device("cpu"), TINY_SD)
        trainer.prepare(red_images(2))
        outcome = trainer.run(Recorder())
        assert outcome.adapter is not None
        return load(outcome.adapter)

    first, again, other = train(1, global_state=0), train(1, global_state=1), train(2, global_state=0)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[key], again[key]) for key in first), "the same seed gave another adapter"
    assert not all(torch.equal(first[key], other[key]) for key in first), "another seed gave the same adapter"
