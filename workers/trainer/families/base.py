"""The protocol the training loop (workers/trainer/loop.py) drives, one implementation per family.

The loop owns everything that is the same for every family: buckets and batches, captions, the optimizer and its
schedule, epochs, checkpoints, resuming, cancel and progress. A family owns what is not: how pixels become
latents, how prompts become conditioning, which layers get LoRA, how the noised input and the loss are made, how
its adapter is named on disk, and how it samples.

Every family class is constructed as `Family(pipeline, spec, params, device)`: the loaded pipeline, its base model's
`BaseModelSpec`, the training's `TrainingParameters` and the torch device (`families.family_for` does it). The loop
runs `loss` (and `embed(..., grad=True)`) under CUDA autocast (bf16 where supported, else fp16), and on CUDA calls
`denoiser.enable_gradient_checkpointing()` and each trained text encoder's `gradient_checkpointing_enable()`.
Optional: a class attribute `supports_prior_preservation = True` makes the loop train with class images
(`classPrompt`); a family without it (FLUX) has `classPrompt` ignored, with a log line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from diffusers import DiffusionPipeline
from peft.utils import set_peft_model_state_dict
from PIL import Image

from workers.trainer import lora


@dataclass(frozen=True)
class Geometry:
    """Where one training image's latents came from: SDXL conditions on it (its size and crop ids); the others
    ignore it. Sizes are (height, width) in pixels, as SDXL's `add_time_ids` order them."""

    original_size: tuple[int, int]
    crop_top_left: tuple[int, int]
    target_size: tuple[int, int]


@dataclass
class Conditioning:
    """One or more prompts' text conditioning, batch first: the tensors a family's denoiser reads (SD 1.5:
    `hidden`; SDXL: `hidden` and `pooled`; FLUX: `hidden`, `pooled` and `text_ids`)."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)

    @staticmethod
    def cat(items: Sequence[Conditioning]) -> Conditioning:
        """Stack single prompts' conditioning into one batch (`text_ids`-like tensors without a batch dimension
        are shared, so they are taken from the first)."""
        first = items[0].tensors
        return Conditioning(
            {
                name: torch.cat([c.tensors[name] for c in items])
                if first[name].dim() >= 2 and name != "text_ids"
                else first[name]
                for name in first
            }
        )


@dataclass(frozen=True)
class AdapterParameters:
    """The LoRA parameters a family added, by what they adapt (each gets its own learning rate)."""

    denoiser: list[torch.nn.Parameter]
    text: list[torch.nn.Parameter]


class AdaptedComponents:
    """The adapter's side every family shares: its LoRA layers live on the pipeline components named in `adapted`
    (set by the family's `add_adapters`), and the pipeline class's own `save_lora_weights` writes them."""

    pipeline: DiffusionPipeline
    adapted: tuple[str, ...]

    def adapter_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """The LoRA weights of each adapted component, peft's naming, copied to the CPU."""
        return {name: lora.lora_state(getattr(self.pipeline, name)) for name in self.adapted}

    def load_adapter_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Put `adapter_state()`'s weights back into the layers `add_adapters` made."""
        for name, weights in state.items():
            set_peft_model_state_dict(getattr(self.pipeline, name), weights)

    def export_adapter(self) -> bytes:
        """One safetensors file that the family's pipeline reads with `load_lora_weights`."""
        return lora.save_adapter_file(self.pipeline, self.adapter_state())


class TrainingFamily(Protocol):
    """One family's side of a training on one pipeline."""

    pipeline: DiffusionPipeline

    @property
    def denoiser(self) -> torch.nn.Module:
        """The UNet or the FLUX transformer."""
        ...

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        """The text encoders a LoRA may adapt (SD 1.5: one; SDXL: both CLIPs; FLUX: CLIP only, as diffusers' FLUX
        script: T5 stays frozen)."""
        ...

    @property
    def pixel_multiple(self) -> int:
        """Training image sides (bucket sizes) are multiples of this many pixels."""
        ...

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Latents of a batch of images in [-1, 1] (B, 3, H, W): the VAE posterior's mean, scaled (and shifted
        where the family shifts), float32 on the CPU. Called once per image before training."""
        ...

    def embed(self, prompts: Sequence[str], *, grad: bool = False) -> Conditioning:
        """The conditioning of `prompts`, one row each; with `grad`, through the (adapted) text encoders so their
        LoRA learns, else computed without autograd (and cached by the loop)."""
        ...

    def add_adapters(self, rank: int, train_text_encoders: bool, targets: tuple[str, ...]) -> AdapterParameters:
        """Freeze the base weights, add fresh LoRA layers (alpha = rank) and return the trainable parameters,
        float32 master copies even when the base runs in half precision."""
        ...

    def loss(
        self,
        latents: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[Geometry],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The training loss of one batch (latents on the CPU, float32): noise and timesteps drawn from
        `generator` only, so a resumed run draws what it would have."""
        ...

    def adapter_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """The LoRA weights by module (`unet`/`transformer`, `text_encoder`, `text_encoder_2`), peft's naming, on
        the CPU: what a snapshot keeps."""
        ...

    def load_adapter_state(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Put `adapter_state()`'s weights back (resuming)."""
        ...

    def export_adapter(self) -> bytes:
        """The adapter as one safetensors file the family's pipeline reads with `load_lora_weights`."""
        ...

    def sample(self, prompt: str, width: int, height: int, steps: int, seed: int) -> Image.Image:
        """One image from the pipeline with the adapter as it stands (epoch samples)."""
        ...
