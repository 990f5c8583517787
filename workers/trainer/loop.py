"""The LoRA training loop (DreamBooth-style, after diffusers' `train_dreambooth_lora*.py`), for every family. No I/O.

The loop owns what every family shares; a `TrainingFamily` (workers/trainer/families/) owns the rest. What it does
differently from the reference scripts, and why:
- VAE latents of every image are computed once, before the first step, each at its aspect-ratio bucket's size
  (workers/trainer/buckets.py); with `randomCrop` the image is encoded with a margin and the crop is taken in latent
  space, so the VAE never runs inside the loop.
- Each distinct prompt's text conditioning is computed once unless a text encoder is being trained.
- Batches come from shuffled passes over the images x `nbRepeats` (without replacement within a pass), one bucket
  per batch, so every batch's latents share a shape.
- Every random draw comes from one CPU generator whose state, with the pass in progress, is saved with each
  checkpoint, so a resumed run continues the same sequence of batches, noise and timesteps it would have drawn;
  the LoRA layers' initial weights are drawn from the seed too, so a training is reproducible from its parameters.
The caller supplies hooks for progress, checkpoints and cancellation; all storage lives outside.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.optimization import get_scheduler
from PIL import Image

from events.training import TrainingParameters
from infra.base_models import BaseModelSpec
from workers.trainer import buckets, lora
from workers.trainer.families import family_for
from workers.trainer.families.base import Conditioning, Geometry, TrainingFamily

RANDOM_CROP_FRACTION = 0.125  # encode at about 112.5 % of the bucket, crop the latents back to it
LOSS_SMOOTHING = 0.9
GRADIENT_CLIP = 1.0


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


@dataclass(frozen=True)
class Example:
    """One training image, encoded: its latents (larger than the bucket by the crop margin with `randomCrop`), its
    prompt, its bucket, and where the bucket-sized box sits by default (its `Geometry` when not randomly cropped)."""

    latents: torch.Tensor  # (C, h, w), float32, CPU
    prompt: str
    bucket: buckets.Size
    geometry: Geometry
    latent_scale: int  # pixels per latent cell


def epoch_boundaries(total_steps: int, epochs: int) -> list[int]:
    """The step at which each epoch ends: steps split as evenly as possible, the last at `total_steps`."""
    return [round(total_steps * (k + 1) / epochs) for k in range(epochs)]


def image_tensor(image: Image.Image, placement: buckets.Placement) -> torch.Tensor:
    """`image` resized and cropped as `placement` says, scaled to [-1, 1], CHW."""
    resized = image.convert("RGB").resize(placement.resized, Image.Resampling.BICUBIC)
    box = (placement.left, placement.top, placement.left + placement.target[0], placement.top + placement.target[1])
    array = np.asarray(resized.crop(box), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the short side to `size`, centre-crop square, scale to [-1, 1], CHW (the bench's reference loop)."""
    return image_tensor(image, buckets.cover(image.size, (size, size)))


def _autocast_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _adamw(groups: list[dict[str, Any]], device: torch.device, eight_bit: bool) -> torch.optim.Optimizer:
    """AdamW; on CUDA, bitsandbytes' 8-bit AdamW when asked for and importable (never a hard dependency)."""
    options = dict(betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    if eight_bit and device.type == "cuda":
        try:
            import bitsandbytes as bnb  # type: ignore[import-not-found]
        except ImportError:
            pass
        else:
            return bnb.optim.AdamW8bit(groups, **options)
    return torch.optim.AdamW(groups, **options)  # type: ignore[arg-type]


class LoraTrainer:
    """One training run on one pipeline (set up with `prepare`, then `run`)."""

    def __init__(
        self,
        pipeline: DiffusionPipeline,
        params: TrainingParameters,
        device: torch.device,
        spec: BaseModelSpec,
        *,
        family: TrainingFamily | None = None,
        eight_bit_optimizer: bool = False,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.pipeline = pipeline
        self.params = params
        self.device = device
        self.spec = spec
        self.family = family or family_for(pipeline, spec, params, device)
        self.eight_bit_optimizer = eight_bit_optimizer
        self.log = log
        self.train_text_encoder = params.learningRateTextEncoder > 0
        self.generator = torch.Generator("cpu").manual_seed(params.seed)
        self.examples: list[Example] = []
        self.class_examples: list[Example] = []
        self.trainable: list[torch.nn.Parameter] = []
        self._text_parameters: list[torch.nn.Parameter] = []
        self._denoiser_parameters: list[torch.nn.Parameter] = []
        self._conditioning: dict[str, Conditioning] = {}
        self._pass: list[list[int]] = []
        self._keys: list[str] = []  # what each example is (prepare's keys), saved with the data order
        self._pass_position = 0

    # --- preparation: everything computed once ---------------------------------------------------------

    @property
    def instance_latents(self) -> torch.Tensor | None:
        """Every training image's latents stacked, when they share one shape (all in one bucket), else None."""
        if not self.examples or len({e.latents.shape for e in self.examples}) > 1:
            return None
        return torch.stack([e.latents for e in self.examples])

    def _bucket_of(self, image: Image.Image) -> buckets.Size:
        resolution = self.params.resolution
        if not self.params.aspectRatioBuckets:
            return (resolution, resolution)
        sizes = buckets.bucket_sizes(resolution, self.family.pixel_multiple, self.spec.max_side)
        return buckets.nearest_bucket(image.size, sizes)

    def _example(self, image: Image.Image, prompt: str, bucket: buckets.Size) -> Example:
        multiple = self.family.pixel_multiple
        encoded = bucket
        if self.params.randomCrop:
            encoded = tuple(side + buckets.crop_margin(side, multiple, RANDOM_CROP_FRACTION) for side in bucket)  # type: ignore[assignment]
        placement = buckets.cover(image.size, encoded)
        latents = self.family.encode_images(image_tensor(image, placement).unsqueeze(0))[0]
        scale = encoded[0] // latents.shape[-1]
        # The default box: the bucket centred in what was encoded (a random crop moves it by whole latent cells).
        inset_x = (encoded[0] - bucket[0]) // 2 // scale * scale
        inset_y = (encoded[1] - bucket[1]) // 2 // scale * scale
        geometry = Geometry(
            original_size=(image.height, image.width),
            crop_top_left=(placement.top + inset_y, placement.left + inset_x),
            target_size=(bucket[1], bucket[0]),
        )
        return Example(latents, prompt, bucket, geometry, scale)

    def _class_images(self) -> list[Image.Image]:
        """Prior-preservation images, drawn from the base model before any adapter exists."""
        params = self.params
        assert params.classPrompt
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator))
        return [
            self.family.sample(params.classPrompt, params.resolution, params.resolution, params.sampleSteps, seed + i)
            for i in range(params.numClassImages)
        ]

    def prepare(
        self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None, keys: Sequence[str] | None = None
    ) -> None:
        """Encode the images (each at its bucket) once, then add the adapters. `prompts` gives each image's prompt
        (aligned with `images`); without it every image trains on the concept prompt. `keys` name the images (a
        resumed run continues its saved pass over them only if they are the same images)."""
        self._keys = list(keys) if keys is not None else [str(i) for i in range(len(images))]
        params = self.params
        prompts = list(prompts) if prompts is not None else [params.conceptPrompt] * len(images)
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts for {len(images)} images")
        self.examples = [
            self._example(image, prompt, self._bucket_of(image)) for image, prompt in zip(images, prompts, strict=True)
        ]
        if params.classPrompt and params.numClassImages and params.priorLossWeight > 0:
            if getattr(self.family, "supports_prior_preservation", False):
                square = (params.resolution, params.resolution)
                self.class_examples = [
                    self._example(image, params.classPrompt, square) for image in self._class_images()
                ]
            else:
                self.log(f"{self.spec.family} does not use prior preservation: classPrompt ignored")
        # peft draws the new layers' initial weights from torch's global generator: seeded from the training's seed
        # (and the process's state restored after), a training is reproducible from its parameters.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(params.seed)
            adapters = self.family.add_adapters(params.rank, self.train_text_encoder, self.spec.lora_targets)
        self._denoiser_parameters, self._text_parameters = adapters.denoiser, adapters.text
        self.trainable = [*adapters.denoiser, *adapters.text]
        if self.device.type == "cuda":
            self.family.denoiser.enable_gradient_checkpointing()  # type: ignore[operator]
            if self.train_text_encoder:
                for encoder in self.family.text_encoders:
                    if hasattr(encoder, "gradient_checkpointing_enable"):
                        encoder.gradient_checkpointing_enable()
                        # transformers checkpoints only in training mode (CLIP has no dropout: outputs unchanged).
                        encoder.train()

    # --- the loop ----------------------------------------------------------------------------------------

    def _optimizer(self) -> tuple[torch.optim.Optimizer, Any]:
        params = self.params
        groups: list[dict[str, Any]] = [{"params": self._denoiser_parameters, "lr": params.learningRate}]
        if self._text_parameters:
            groups.append({"params": self._text_parameters, "lr": params.learningRateTextEncoder})
        optimizer = _adamw(groups, self.device, self.eight_bit_optimizer)
        scheduler = get_scheduler(
            params.lrScheduler.value.replace("-", "_"),
            optimizer=optimizer,
            num_warmup_steps=params.lrWarmupSteps,
            num_training_steps=params.maxTrainSteps,
        )
        return optimizer, scheduler

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=_autocast_dtype(self.device))

    def _text_trains(self, step: int) -> bool:
        """Whether the text encoders train at `step` (numTextTrainSteps: the first N steps, alone)."""
        if not self._text_parameters:
            return False
        return not self.params.numTextTrainSteps or step < self.params.numTextTrainSteps

    def _denoiser_trains(self, step: int) -> bool:
        return not self.params.numTextTrainSteps or step >= self.params.numTextTrainSteps

    def conditioning(self, prompts: Sequence[str], *, grad: bool = False) -> Conditioning:
        """The conditioning of a batch's prompts: through the encoders with autograd when they train, else each
        distinct prompt's cached one (computed on first use)."""
        if grad:
            return self.family.embed(prompts, grad=True)
        missing = [p for p in dict.fromkeys(prompts) if p not in self._conditioning]
        if missing:
            embedded = self.family.embed(missing)
            for row, prompt in enumerate(missing):
                self._conditioning[prompt] = Conditioning(
                    {
                        name: t[row : row + 1] if t.dim() >= 2 and name != "text_ids" else t
                        for name, t in embedded.tensors.items()
                    }
                )
        return Conditioning.cat([self._conditioning[p] for p in prompts])

    def _next_batch(self) -> list[int]:
        if self._pass_position >= len(self._pass):
            self._pass = buckets.pass_batches(
                [e.bucket for e in self.examples], self.params.nbRepeats, self.params.batchSize, self.generator
            )
            self._pass_position = 0
        batch = self._pass[self._pass_position]
        self._pass_position += 1
        return batch

    def _crop(self, example: Example) -> tuple[torch.Tensor, Geometry]:
        """The example's bucket-sized latents and geometry: centred, or a random crop with `randomCrop`."""
        latents = example.latents
        width, height = example.bucket[0] // example.latent_scale, example.bucket[1] // example.latent_scale
        if latents.shape[-1] == width and latents.shape[-2] == height:
            return latents, example.geometry
        top = int(torch.randint(0, latents.shape[-2] - height + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, latents.shape[-1] - width + 1, (1,), generator=self.generator))
        centre_top, centre_left = (latents.shape[-2] - height) // 2, (latents.shape[-1] - width) // 2
        scale = example.latent_scale
        crop_top, crop_left = example.geometry.crop_top_left
        geometry = Geometry(
            original_size=example.geometry.original_size,
            crop_top_left=(crop_top + (top - centre_top) * scale, crop_left + (left - centre_left) * scale),
            target_size=example.geometry.target_size,
        )
        return latents[..., top : top + height, left : left + width], geometry

    def _batch_loss(self, examples: Sequence[Example], text_trains: bool) -> torch.Tensor:
        crops = [self._crop(e) for e in examples]
        latents = torch.stack([latents for latents, _ in crops])
        conditioning = self.conditioning([e.prompt for e in examples], grad=text_trains)
        return self.family.loss(latents, conditioning, [g for _, g in crops], self.generator)

    def _class_batch(self) -> list[Example]:
        indices = torch.randint(0, len(self.class_examples), (self.params.batchSize,), generator=self.generator)
        return [self.class_examples[i] for i in indices.tolist()]

    def _step_loss(self, step: int) -> torch.Tensor:
        params = self.params
        text_trains = self._text_trains(step)
        with self._autocast():
            loss = self._batch_loss([self.examples[i] for i in self._next_batch()], text_trains)
            if self.class_examples:
                loss = loss + params.priorLossWeight * self._batch_loss(self._class_batch(), text_trains)
        return loss

    def _drop_idle_gradients(self, step: int) -> None:
        """numTextTrainSteps: the group not training at this step keeps its weights (AdamW skips a None grad)."""
        idle = []
        if not self._denoiser_trains(step):
            idle = self._denoiser_parameters
        elif self._text_parameters and not self._text_trains(step):
            idle = self._text_parameters
        for param in idle:
            param.grad = None

    def _samples(self) -> list[Image.Image]:
        params = self.params
        return [
            self.family.sample(prompt, params.resolution, params.resolution, params.sampleSteps, params.seed + index)
            for index, prompt in enumerate(params.samplePrompts)
        ]

    def _snapshot(self, optimizer: torch.optim.Optimizer, lr_scheduler: Any, step: int, epochs_done: int) -> bytes:
        order = {"pass": self._pass, "position": self._pass_position, "keys": self._keys}
        return lora.snapshot(
            self.family.adapter_state(), optimizer, lr_scheduler, self.generator, step, epochs_done, order
        )

    def _resume(self, resume: bytes, optimizer: torch.optim.Optimizer, lr_scheduler: Any) -> tuple[int, int]:
        state = lora.load_snapshot(resume)
        self.family.load_adapter_state(lora.snapshot_adapter(state))
        lora.restore(state, optimizer, lr_scheduler, self.generator)
        order = state.get("data_order") or {}
        if order.get("keys", self._keys) == self._keys:
            self._pass = [list(batch) for batch in order.get("pass", [])]
            self._pass_position = int(order.get("position", 0))
        else:
            # An image was deleted since the snapshot: the saved pass's indices name other images; start a new pass.
            self.log("the training images changed since the snapshot: starting a new pass over them")
        self._conditioning.clear()  # a trained text encoder's conditioning changed
        step, epochs_done = int(state["step"]), int(state["epochs_done"])
        self.log(f"resumed at step {step} (epoch {epochs_done})")
        return step, epochs_done

    def run(self, hooks: TrainingHooks, resume: bytes | None = None) -> TrainingOutcome:
        """Train until `maxTrainSteps` or until the hooks ask to stop, checkpointing every epoch."""
        assert self.examples, "prepare() first"
        params = self.params
        optimizer, lr_scheduler = self._optimizer()
        step, epochs_done = 0, 0
        if resume is not None:
            step, epochs_done = self._resume(resume, optimizer, lr_scheduler)
        resumed_from = step
        boundaries = epoch_boundaries(params.maxTrainSteps, params.nbEpochs)
        self.family.denoiser.train()
        smoothed: float | None = None
        started = time.perf_counter()
        while step < params.maxTrainSteps:
            if hooks.should_stop():
                return TrainingOutcome(None, step, smoothed, canceled=True, resumed_from_step=resumed_from)
            if self._text_parameters and params.numTextTrainSteps and step == params.numTextTrainSteps:
                self._conditioning.clear()  # the text encoders stop here: cache what they now say
            loss = self._step_loss(step)
            loss.backward()
            self._drop_idle_gradients(step)
            torch.nn.utils.clip_grad_norm_(self.trainable, GRADIENT_CLIP)
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
                        adapter=self.family.export_adapter(),
                        snapshot=self._snapshot(optimizer, lr_scheduler, step, epochs_done),
                        samples=self._samples() if params.samplePrompts else [],
                        loss=smoothed,
                    )
                )
        return TrainingOutcome(
            self.family.export_adapter(), step, smoothed, canceled=False, resumed_from_step=resumed_from
        )
