"""The LoRA training loop (DreamBooth-style, after diffusers' `train_dreambooth_lora.py`). No I/O.

What it does differently from the reference script, and why:
- VAE latents of every image are computed once, before the first step; with `randomCrop` the image is
  encoded with a margin and the crop is taken in latent space (8 pixels per latent cell), so the VAE never
  runs inside the loop.
- The prompt's text embedding is computed once unless the text encoder itself is being trained.
- Every random draw comes from one CPU generator whose state is saved with each checkpoint, so a resumed
  run continues the same sequence of batches, noise and timesteps it would have drawn.
The caller supplies hooks for progress, checkpoints and cancellation; all storage lives outside.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.optimization import get_scheduler
from PIL import Image

from events.training import TrainingParameters
from workers.trainer import lora

RANDOM_CROP_MARGIN = 1.125  # encode at 112.5 % of the resolution, crop the latents back to it
LOSS_SMOOTHING = 0.9


@dataclass(frozen=True)
class StepReport:
    """One finished step, for progress."""

    step: int
    total_steps: int
    epoch: int
    total_epochs: int
    loss: float
    steps_per_second: float


@dataclass(frozen=True)
class EpochReport:
    """One finished epoch: the adapter so far, samples, and a snapshot to resume from."""

    epoch: int
    step: int
    adapter: bytes
    snapshot: bytes
    samples: list[Image.Image]
    loss: float


@dataclass(frozen=True)
class TrainingOutcome:
    """How a run ended."""

    adapter: bytes | None  # the final adapter; None when canceled
    steps: int
    final_loss: float | None
    canceled: bool
    resumed_from_step: int


class TrainingHooks(Protocol):
    """What the loop reports to and asks of its caller."""

    def on_step(self, report: StepReport) -> None: ...

    def on_epoch(self, report: EpochReport) -> None: ...

    def should_stop(self) -> bool: ...


def epoch_boundaries(total_steps: int, epochs: int) -> list[int]:
    """The step at which each epoch ends: steps split as evenly as possible, the last at `total_steps`."""
    return [round(total_steps * (k + 1) / epochs) for k in range(epochs)]


def _to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the short side to `size`, centre-crop square, scale to [-1, 1], CHW."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    resized = image.resize(
        (max(size, round(image.width * scale)), max(size, round(image.height * scale))), Image.Resampling.BICUBIC
    )
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    square = resized.crop((left, top, left + size, top + size))
    array = np.asarray(square, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


class LoraTrainer:
    """One training run on one pipeline (set up, then `run`)."""

    def __init__(
        self,
        pipeline: StableDiffusionPipeline,
        params: TrainingParameters,
        device: torch.device,
        unet_targets: tuple[str, ...],
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.pipeline = pipeline
        self.unet_targets = unet_targets
        self.params = params
        self.device = device
        self.log = log
        self.dtype = pipeline.unet.dtype
        self.train_text_encoder = params.learningRateTextEncoder > 0
        self.generator = torch.Generator("cpu").manual_seed(params.seed)
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.instance_latents: torch.Tensor | None = None
        self.class_latents: torch.Tensor | None = None
        self.instance_embedding: torch.Tensor | None = None
        self.class_embedding: torch.Tensor | None = None
        self.trainable: list[torch.nn.Parameter] = []

    # --- preparation: everything computed once ---------------------------------------------------------

    def _encode_images(self, images: list[Image.Image], size: int) -> torch.Tensor:
        vae = self.pipeline.vae
        latents = []
        with torch.no_grad():
            for image in images:
                pixels = _to_tensor(image, size).unsqueeze(0).to(self.device, vae.dtype)
                dist = vae.encode(pixels).latent_dist
                latents.append(dist.mean * vae.config.scaling_factor)  # the mean: the same latents every time
        return torch.cat(latents).to(torch.float32)

    def _tokens(self, prompt: str) -> torch.Tensor:
        tokenizer = self.pipeline.tokenizer
        return tokenizer(
            prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids.to(self.device)

    def _embed(self, prompt: str) -> torch.Tensor:
        with torch.no_grad():
            return self.pipeline.text_encoder(self._tokens(prompt))[0].to(torch.float32)

    def _class_images(self) -> list[Image.Image]:
        """Prior-preservation images, drawn from the base model before any adapter exists."""
        params = self.params
        assert params.classPrompt
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        images = []
        for index in range(params.numClassImages):
            result = self.pipeline(
                prompt=params.classPrompt,
                width=params.resolution,
                height=params.resolution,
                num_inference_steps=params.sampleSteps,
                generator=torch.Generator("cpu").manual_seed(seed + index),
            )
            images.extend(result.images)
        return images

    def prepare(self, images: list[Image.Image]) -> None:
        """Encode the images and prompts once, then add the adapters."""
        params = self.params
        encode_size = (
            int(math.ceil(params.resolution * RANDOM_CROP_MARGIN / 8) * 8) if params.randomCrop else params.resolution
        )
        self.instance_latents = self._encode_images(images, encode_size)
        if params.classPrompt and params.numClassImages and params.priorLossWeight > 0:
            self.class_latents = self._encode_images(self._class_images(), params.resolution)
            self.class_embedding = self._embed(params.classPrompt)
        self.instance_embedding = self._embed(params.conceptPrompt)
        self.trainable = lora.add_adapters(self.pipeline, params.rank, self.train_text_encoder, self.unet_targets)
        if self.device.type == "cuda":
            self.pipeline.unet.enable_gradient_checkpointing()
            if self.train_text_encoder:
                self.pipeline.text_encoder.gradient_checkpointing_enable()

    # --- the loop ----------------------------------------------------------------------------------------

    def _optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        params = self.params
        unet_params = [p for p in self.pipeline.unet.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": unet_params, "lr": params.learningRate}]
        if self.train_text_encoder:
            te_params = [p for p in self.pipeline.text_encoder.parameters() if p.requires_grad]
            groups.append({"params": te_params, "lr": params.learningRateTextEncoder})
        optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        scheduler = get_scheduler(
            params.lrScheduler.value.replace("-", "_"),
            optimizer=optimizer,
            num_warmup_steps=params.lrWarmupSteps,
            num_training_steps=params.maxTrainSteps,
        )
        return optimizer, scheduler

    def _batch_latents(self, source: torch.Tensor, count: int) -> torch.Tensor:
        indices = torch.randint(0, source.shape[0], (count,), generator=self.generator)
        latents = source[indices]
        side = self.params.resolution // 8
        if latents.shape[-1] > side:
            top = int(torch.randint(0, latents.shape[-2] - side + 1, (1,), generator=self.generator))
            left = int(torch.randint(0, latents.shape[-1] - side + 1, (1,), generator=self.generator))
            latents = latents[..., top : top + side, left : left + side]
        return latents

    def _loss(self, latents: torch.Tensor, embedding: torch.Tensor | None, prompt: str) -> torch.Tensor:
        count = latents.shape[0]
        noise = torch.randn(latents.shape, generator=self.generator)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (count,), generator=self.generator
        )
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        if self.train_text_encoder:
            hidden = self.pipeline.text_encoder(self._tokens(prompt))[0]
        else:
            assert embedding is not None
            hidden = embedding
        hidden = hidden.expand(count, -1, -1)
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.device.type == "cuda"):
            prediction = self.pipeline.unet(noisy.to(self.dtype), timesteps, hidden.to(self.dtype)).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    def _samples(self) -> list[Image.Image]:
        params = self.params
        self.pipeline.unet.eval()
        images: list[Image.Image] = []
        with torch.no_grad():
            for index, prompt in enumerate(params.samplePrompts):
                result = self.pipeline(
                    prompt=prompt,
                    width=params.resolution,
                    height=params.resolution,
                    num_inference_steps=params.sampleSteps,
                    generator=torch.Generator("cpu").manual_seed(params.seed + index),
                )
                images.extend(result.images)
        self.pipeline.unet.train()
        return images

    def run(self, hooks: TrainingHooks, resume: bytes | None = None) -> TrainingOutcome:
        """Train until `maxTrainSteps` or until the hooks ask to stop, checkpointing every epoch."""
        assert self.instance_latents is not None, "prepare() first"
        params = self.params
        optimizer, lr_scheduler = self._optimizer()
        step, epochs_done = 0, 0
        if resume is not None:
            state = lora.load_snapshot(resume)
            lora.restore(self.pipeline, state, optimizer, lr_scheduler, self.generator)
            step, epochs_done = int(state["step"]), int(state["epochs_done"])
            self.log(f"resumed at step {step} (epoch {epochs_done})")
        resumed_from = step
        boundaries = epoch_boundaries(params.maxTrainSteps, params.nbEpochs)
        self.pipeline.unet.train()
        smoothed: float | None = None
        started = time.perf_counter()
        while step < params.maxTrainSteps:
            if hooks.should_stop():
                return TrainingOutcome(None, step, smoothed, canceled=True, resumed_from_step=resumed_from)
            latents = self._batch_latents(self.instance_latents, params.batchSize)
            loss = self._loss(latents, self.instance_embedding, params.conceptPrompt)
            if self.class_latents is not None:
                prior = self._loss(
                    self._batch_latents(self.class_latents, params.batchSize),
                    self.class_embedding,
                    params.classPrompt or "",
                )
                loss = loss + params.priorLossWeight * prior
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.trainable, 1.0)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.detach())
            smoothed = value if smoothed is None else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * value
            rate = (step - resumed_from) / max(time.perf_counter() - started, 1e-6)
            hooks.on_step(StepReport(step, params.maxTrainSteps, epochs_done, params.nbEpochs, smoothed, rate))
            if epochs_done < len(boundaries) and step >= boundaries[epochs_done]:
                epochs_done += 1
                hooks.on_epoch(
                    EpochReport(
                        epoch=epochs_done,
                        step=step,
                        adapter=lora.export_adapter(self.pipeline, self.train_text_encoder),
                        snapshot=lora.snapshot(
                            self.pipeline,
                            self.train_text_encoder,
                            optimizer,
                            lr_scheduler,
                            self.generator,
                            step,
                            epochs_done,
                        ),
                        samples=self._samples() if params.samplePrompts else [],
                        loss=smoothed,
                    )
                )
        adapter = lora.export_adapter(self.pipeline, self.train_text_encoder)
        return TrainingOutcome(adapter, step, smoothed, canceled=False, resumed_from_step=resumed_from)
