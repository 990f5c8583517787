"""FLUX.1 LoRA training: flow matching on the packed latents of a `FluxPipeline` (after diffusers'
`train_dreambooth_lora_flux.py`).

Choices, and why:
- Noise levels: u ~ U[0, 1) (no loss weighting, diffusers' default "none" scheme), then shifted the way the
  pipeline shifts its sampling schedule: with the scheduler's dynamic shifting (FLUX.1-dev) by the shift the
  pipeline computes for the image's sequence length (`calculate_shift` with the config's base/max shift and sequence
  lengths), else by the config's fixed `shift` (FLUX.1-schnell). diffusers' script draws from the scheduler's
  unshifted training sigmas when shifting is dynamic; training where sampling spends its steps (more noise for more
  tokens) makes the two agree, at every bucket size.
- Guidance: FLUX.1-dev's transformer is guidance-distilled and reads the guidance scale as an input. Training feeds
  one constant, the base model's default sampling guidance (3.5 for FLUX.1-dev, as diffusers' script does), so the
  adapter learns at the value it is most often sampled with.
- The text encoders: CLIP's pooled output and T5's hidden states condition the transformer; only CLIP may get
  LoRA layers (T5 stays frozen, as in diffusers' script).
- `optimizeFor` chooses the transformer blocks the adapter covers (`target_module_names`): "all" every double- and
  single-stream block, "likeness" a subset of them (below), "none" or unset no block selection at all: the base
  model's targets wherever they are, which on FLUX.1 (attention targets only) is exactly "all" and on tiny-flux
  also adapts the transformer's final projection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from PIL import Image

from events.training import TrainingParameters
from infra.base_models import BaseModelSpec
from workers.job_errors import BaseModelUnavailable
from workers.module_construction import MODULE_CONSTRUCTION
from workers.trainer import lora
from workers.trainer.families.base import AdaptedComponents, AdapterParameters, Conditioning, Geometry

OptimizeFor = Literal["likeness", "all", "none"] | None

DOUBLE_BLOCKS = "transformer_blocks"
SINGLE_BLOCKS = "single_transformer_blocks"
# "likeness": the single-stream blocks 7 to 20 of FLUX.1's 38, the range community block analyses found carries a
# subject's identity (the often-shared "7, 12, 16, 20" choice lies in it), and the first 2 of its 19 double-stream
# blocks, where text and image first meet. Given as fractions of the block count so the choice scales to a model
# with fewer blocks: a block is chosen when its centre lies in the range (and each set keeps at least one block).
LIKENESS_SINGLE_RANGE = (7 / 38, 21 / 38)
LIKENESS_DOUBLE_RANGE = (0.0, 2 / 19)


def blocks_in_range(count: int, start: float, stop: float) -> list[int]:
    """The indices of `count` blocks whose centres lie in [start, stop) of the stack (at least the nearest one)."""
    chosen = [index for index in range(count) if start <= (index + 0.5) / count < stop]
    if chosen or count == 0:
        return chosen
    middle = (start + stop) / 2
    return [min(range(count), key=lambda index: abs((index + 0.5) / count - middle))]


def chosen_blocks(
    optimize_for: OptimizeFor, double_count: int, single_count: int
) -> tuple[list[int], list[int]] | None:
    """The (double, single) block indices an `optimizeFor` value trains; None: no block selection."""
    if optimize_for in (None, "none"):
        return None
    if optimize_for == "all":
        return list(range(double_count)), list(range(single_count))
    return (
        blocks_in_range(double_count, *LIKENESS_DOUBLE_RANGE),
        blocks_in_range(single_count, *LIKENESS_SINGLE_RANGE),
    )


def _matches(name: str, targets: Sequence[str]) -> bool:
    # peft's own rule for a list of target names: the full name, or a dotted suffix of it.
    return any(name == target or name.endswith(f".{target}") for target in targets)


def target_module_names(
    module_names: Iterable[str],
    targets: Sequence[str],
    optimize_for: OptimizeFor,
    double_count: int,
    single_count: int,
) -> list[str]:
    """The full names of the transformer modules an adapter covers: those of `module_names` that `targets` names
    (peft's suffix rule), inside the blocks `optimize_for` chooses (every module when it chooses none)."""
    selected = [name for name in module_names if _matches(name, targets)]
    blocks = chosen_blocks(optimize_for, double_count, single_count)
    if blocks is None:
        return selected
    prefixes = tuple(f"{DOUBLE_BLOCKS}.{index}." for index in blocks[0]) + tuple(
        f"{SINGLE_BLOCKS}.{index}." for index in blocks[1]
    )
    return [name for name in selected if name.startswith(prefixes)]


class FluxFamily(AdaptedComponents):
    """The FLUX.1 side of one LoRA training on one `FluxPipeline` (see the module's docstring for the choices)."""

    # Seed 003 documents prior preservation (classPrompt, priorLossWeight) for SD 1.5 and SDXL only.
    supports_prior_preservation = False

    def __init__(
        self, pipeline: FluxPipeline, spec: BaseModelSpec, params: TrainingParameters, device: torch.device
    ) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.params = params
        self.device = device
        self.dtype = pipeline.transformer.dtype
        # Training conditions on the guidance samples are drawn with by default (FLUX.1-dev: 3.5).
        self.guidance = spec.default_guidance
        # A copy, so reading its shift functions never touches the sampling scheduler's state.
        self.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipeline.scheduler.config)
        self.adapted: tuple[str, ...] = ()  # the components with LoRA layers, once added

    # --- what the loop reads -------------------------------------------------------------------------------

    @property
    def denoiser(self) -> torch.nn.Module:
        """The FLUX transformer."""
        return self.pipeline.transformer

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        """CLIP only: T5 stays frozen."""
        return [self.pipeline.text_encoder]

    @property
    def pixel_multiple(self) -> int:
        """The VAE's 8x and the 2x2 packing of latents: 16 pixels."""
        return self.pipeline.vae_scale_factor * 2

    @property
    def max_sequence_length(self) -> int:
        """T5 tokens per prompt: the tokenizer's own limit (512 for FLUX.1-dev, 128 for tiny-flux)."""
        return int(self.pipeline.tokenizer_2.model_max_length)

    def _autocast(self) -> torch.autocast | nullcontext[None]:
        # Sampling on a GPU in the base's half precision (the loop autocasts the training steps itself); the LoRA
        # master weights are float32.
        if self.device.type == "cuda" and self.dtype in (torch.bfloat16, torch.float16):
            return torch.autocast("cuda", dtype=self.dtype)
        return nullcontext()

    # --- preparation ---------------------------------------------------------------------------------------

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """The VAE posterior's mean, shifted and scaled as FLUX's VAE is (float32, on the CPU)."""
        vae = self.pipeline.vae
        with torch.no_grad():
            mean = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mean
            latents = (mean - vae.config.shift_factor) * vae.config.scaling_factor
        return latents.to("cpu", torch.float32)

    def embed(self, prompts: Sequence[str], *, grad: bool = False) -> Conditioning:
        """T5's hidden states (`hidden`), CLIP's pooled output (`pooled`) and the text position ids (`text_ids`,
        shared by the batch), through the pipeline's own `encode_prompt`. Without `grad`: float32 on the CPU, for
        the loop's cache; with it, on the device with CLIP's autograd graph (T5's weights are frozen, so no graph
        is built through it)."""
        with nullcontext() if grad else torch.no_grad():
            hidden, pooled, text_ids = self.pipeline.encode_prompt(
                prompt=list(prompts), prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
            )
        tensors = {"hidden": hidden, "pooled": pooled, "text_ids": text_ids}
        if not grad:
            tensors = {name: tensor.to("cpu", torch.float32) for name, tensor in tensors.items()}
        return Conditioning(tensors)

    def add_adapters(self, rank: int, train_text_encoders: bool, targets: tuple[str, ...]) -> AdapterParameters:
        """LoRA (alpha = rank) on the transformer modules `targets` names in the blocks `optimizeFor` chooses, and
        on CLIP's attention when `train_text_encoders`; everything else frozen."""
        pipeline = self.pipeline
        for module in (pipeline.transformer, pipeline.vae, pipeline.text_encoder, pipeline.text_encoder_2):
            module.requires_grad_(False)
        transformer = pipeline.transformer
        names = target_module_names(
            (name for name, _ in transformer.named_modules()),
            targets,
            self.params.optimizeFor,
            len(transformer.transformer_blocks),
            len(transformer.single_transformer_blocks),
        )
        if not names:
            raise BaseModelUnavailable(f"base model {self.spec.name!r}: no transformer module matches {targets}")
        with MODULE_CONSTRUCTION:  # both modules' layers in one hold, as lora.add_adapters does
            denoiser = lora.add_lora(transformer, rank, names)
            text = lora.add_lora(pipeline.text_encoder, rank, lora.TEXT_ENCODER_TARGETS) if train_text_encoders else []
        self.adapted = ("transformer", "text_encoder") if train_text_encoders else ("transformer",)
        return AdapterParameters(denoiser=denoiser, text=text)

    # --- the loss ------------------------------------------------------------------------------------------

    def sigmas(self, u: torch.Tensor, sequence_length: int) -> torch.Tensor:
        """Noise levels for uniform draws `u`, shifted as the pipeline's sampling schedule is for images of
        `sequence_length` packed tokens."""
        config = self.scheduler.config
        if config.use_dynamic_shifting:
            mu = calculate_shift(
                sequence_length,
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.15),
            )
            return self.scheduler.time_shift(mu, 1.0, u)
        shift = float(config.shift)
        return shift * u / (1 + (shift - 1) * u)

    def loss(
        self,
        latents: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[Geometry],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """Flow matching: the transformer predicts the velocity noise - x at x_sigma = (1 - sigma) x + sigma noise,
        on packed latents; mean squared error, unweighted. `geometry` is not read (FLUX has no size conditioning)."""
        batch, channels, height, width = latents.shape
        noise = torch.randn(latents.shape, generator=generator)
        u = torch.rand((batch,), generator=generator)
        sigma = self.sigmas(u, (height // 2) * (width // 2)).view(batch, 1, 1, 1)
        noisy = (1 - sigma) * latents + sigma * noise
        target = (noise - latents).to(self.device)

        pipeline = self.pipeline
        packed = pipeline._pack_latents(noisy, batch, channels, height, width).to(self.device, self.dtype)
        image_ids = pipeline._prepare_latent_image_ids(batch, height // 2, width // 2, self.device, self.dtype)
        tensors = conditioning.tensors
        hidden = tensors["hidden"].to(self.device, self.dtype)
        pooled = tensors["pooled"].to(self.device, self.dtype)
        if hidden.shape[0] != batch:  # one prompt's conditioning for the whole batch
            hidden, pooled = hidden.expand(batch, -1, -1), pooled.expand(batch, -1)
        guidance = (
            torch.full((batch,), self.guidance, device=self.device, dtype=torch.float32)
            if pipeline.transformer.config.guidance_embeds
            else None
        )
        prediction = pipeline.transformer(
            hidden_states=packed,
            timestep=sigma.flatten().to(self.device, self.dtype),  # the transformer reads t in [0, 1]
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=hidden,
            txt_ids=tensors["text_ids"].to(self.device, self.dtype),
            img_ids=image_ids,
            return_dict=False,
        )[0]
        scale = pipeline.vae_scale_factor
        prediction = pipeline._unpack_latents(prediction, height * scale, width * scale, scale)
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    # --- samples -------------------------------------------------------------------------------------------

    def sample(self, prompt: str, width: int, height: int, steps: int, seed: int) -> Image.Image:
        """One image at the guidance training used, sides rounded down to multiples of 16 pixels."""
        multiple = self.pixel_multiple
        transformer = self.pipeline.transformer
        was_training = transformer.training
        transformer.eval()
        try:
            with torch.no_grad(), self._autocast():
                result = self.pipeline(
                    prompt=prompt,
                    width=max(multiple, width // multiple * multiple),
                    height=max(multiple, height // multiple * multiple),
                    num_inference_steps=steps,
                    guidance_scale=self.guidance,
                    max_sequence_length=self.max_sequence_length,
                    generator=torch.Generator("cpu").manual_seed(seed),
                )
        finally:
            transformer.train(was_training)
        return result.images[0]
