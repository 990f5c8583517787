"""Training steps per second: LoRA Foundry's trainer against diffusers' reference loop, in one run.

The baseline is a loop written the way diffusers' `train_dreambooth_lora.py` does it: every step it encodes
the batch's pixels with the VAE (sampling the latent distribution) and the prompt with the text encoder, then
noises, predicts, and steps the optimizer. The trainer (`workers/trainer/loop.py`) encodes each image and the
prompt once, up front. Both run on the same base model, images, LoRA targets and rank, optimizer, batch size,
resolution and number of steps; the trainer's time includes its preparation and its end-of-run checkpoint.
Runs alternate (reference, trainer, reference, ...) so drift on a shared machine hits both; medians are quoted.

    python bench/train_throughput.py                                   # tiny-sd, 64 px, CPU
    python bench/train_throughput.py --model sd15-random --resolution 512 --batch 1 --steps 30   # on a GPU
    python bench/train_throughput.py --shape sdxl-random --resolution 1024 --batch 1 --steps 20  # SDXL, on a GPU
    python bench/train_throughput.py --shape flux-random --resolution 1024 --batch 1 --steps 20  # FLUX.1, on a GPU
    python bench/train_throughput.py --shape flux-random --tiny --steps 4 --repeats 1             # smoke run, CPU

The SDXL and FLUX shapes (bench/random_shapes.py) are built on the device in its dtype; `--tiny` builds them at a
tiny width (the same code path, seconds on a CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDPMScheduler,
    DiffusionPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from random_shapes import build_flux_random, build_sdxl_random, random_spec
from transformers import CLIPTextConfig, CLIPTextModel

from events.training import TrainingParameters
from infra.base_models import ATTENTION_TARGETS, TINY_SD, BaseModelSpec, Family
from infra.settings import Settings
from workers.base_models.loader import pick_device
from workers.base_models.tiny_sd import MAX_TOKENS, build_tiny_sd
from workers.base_models.tokenizer import byte_level_tokenizer
from workers.trainer.families import family_for
from workers.trainer.families.base import Geometry
from workers.trainer.loop import LoraTrainer, StepReport, _to_tensor

PROMPT = "a photo of lfzq"


def build_sd15_random(seed: int = 0) -> StableDiffusionPipeline:
    """A pipeline with Stable Diffusion 1.5's shapes (UNet 320-1280, SD VAE, CLIP ViT-L text encoder) and
    random weights: the compute of the real model without downloading it."""
    tokenizer = byte_level_tokenizer(MAX_TOKENS)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)  # the defaults are SD 1.x's UNet
    vae = AutoencoderKL(
        block_out_channels=[128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=512,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=768,
            intermediate_size=3072,
            num_attention_heads=12,
            num_hidden_layers=12,
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False)
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


# Each --model shape: how to build its pipeline, and the base-model entry the trainer reads (family, LoRA targets).
# The SDXL and FLUX shapes are built by `shape`, on the device (RANDOM_SHAPES).
SHAPES: dict[str, tuple[Callable[[], StableDiffusionPipeline], BaseModelSpec]] = {
    "tiny-sd": (build_tiny_sd, TINY_SD),
    "sd15-random": (
        build_sd15_random,
        BaseModelSpec(
            name="sd15-random",
            source="bench:sd15-random",
            family=TINY_SD.family,
            default_size=512,
            max_side=1536,
            default_steps=30,
            lora_targets=ATTENTION_TARGETS,
        ),
    ),
}


RANDOM_SHAPES = {"sdxl-random": (Family.SDXL, build_sdxl_random), "flux-random": (Family.FLUX, build_flux_random)}


def shape(
    model: str, tiny: bool, device: torch.device, dtype: torch.dtype
) -> tuple[Callable[[], DiffusionPipeline], BaseModelSpec]:
    """The builder and base-model entry of a --model shape (an SDXL or FLUX one made on `device` in `dtype`)."""
    if model in SHAPES:
        return SHAPES[model]
    family, build = RANDOM_SHAPES[model]
    return (lambda: build(tiny=tiny, device=device, dtype=dtype)), random_spec(model, family, tiny)


def images(count: int, size: int) -> list[Image.Image]:
    """A distinctive, noisy image set."""
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(np.clip(np.array([220, 30, 30]) + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8))
        for _ in range(count)
    ]


class _Quiet:
    def on_step(self, report: StepReport) -> None:
        pass

    def on_epoch(self, report: object) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_trainer(
    pipeline: StableDiffusionPipeline, params: TrainingParameters, data: list[Image.Image], spec: BaseModelSpec
) -> float:
    """Seconds for the trainer to prepare and run `params.maxTrainSteps` steps."""
    device = pipeline.device
    _sync(device)
    started = time.perf_counter()
    trainer = LoraTrainer(pipeline, params, device, spec)
    trainer.prepare(data)
    trainer.run(_Quiet())
    _sync(device)
    return time.perf_counter() - started


def run_reference(
    pipeline: DiffusionPipeline, params: TrainingParameters, data: list[Image.Image], spec: BaseModelSpec
) -> float:
    """Seconds for diffusers' dreambooth-style loop: the VAE and the text encoders run inside every step. It
    drives the trainer's own family code (`family_for`: the same noise, conditioning and loss for SD 1.5, SDXL and
    FLUX), so the difference measured is only what the trainer computes once instead of every step."""
    device = pipeline.device
    family = family_for(pipeline, spec, params, device)
    trainable = family.add_adapters(params.rank, False, spec.lora_targets).denoiser
    if device.type == "cuda":
        family.denoiser.enable_gradient_checkpointing()  # type: ignore[operator]
    optimizer = torch.optim.AdamW(trainable, lr=params.learningRate, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    side = params.resolution
    pixels = torch.stack([_to_tensor(image, side) for image in data])
    geometry = [Geometry((side, side), (0, 0), (side, side))] * params.batchSize
    generator = torch.Generator().manual_seed(params.seed)
    family.denoiser.train()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    _sync(device)
    started = time.perf_counter()
    for _ in range(params.maxTrainSteps):
        batch = pixels[torch.randint(0, len(data), (params.batchSize,), generator=generator)]
        with autocast:
            latents = family.encode_images(batch)
            conditioning = family.embed([PROMPT] * params.batchSize)
            loss = family.loss(latents, conditioning, geometry, generator)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _sync(device)
    return time.perf_counter() - started


def main() -> None:
    """Alternate reference and trainer runs; print steps/s of each, medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "--shape", dest="model", choices=(*SHAPES, *RANDOM_SHAPES), default="tiny-sd")
    parser.add_argument("--tiny", action="store_true", help="build an SDXL or FLUX shape at a tiny width (CPU smoke)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    device, dtype = pick_device(Settings().torch_device)
    builder, spec = shape(args.model, args.tiny, device, dtype)
    params = TrainingParameters(
        learningRate=1e-4,
        learningRateTextEncoder=0,
        maxTrainSteps=args.steps,
        rank=args.rank,
        batchSize=args.batch,
        nbEpochs=1,
        nbRepeats=1,
        seed=0,
        resolution=args.resolution,
        conceptPrompt=PROMPT,
    )
    data = images(args.images, args.resolution)

    def fresh() -> StableDiffusionPipeline:
        pipeline = builder()
        if dtype != torch.float32:  # a cast to the dtype it already has only earns a warning
            pipeline = pipeline.to(dtype=dtype)
        pipeline = pipeline.to(device)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    print(
        f"{args.model} at {args.resolution} px, batch {args.batch}, {args.steps} steps, rank {args.rank}, "
        f"{args.images} images, {device} {str(dtype).removeprefix('torch.')}, torch threads {torch.get_num_threads()}"
    )
    # One untimed round of each, so lazy initialisation (kernels, allocator) lands in neither figure.
    warm = params.model_copy(update={"maxTrainSteps": 2})
    run_reference(fresh(), warm, data, spec)
    run_trainer(fresh(), warm, data, spec)
    reference_rates, trainer_rates = [], []
    for round_ in range(args.repeats):
        reference_rates.append(args.steps / run_reference(fresh(), params, data, spec))
        trainer_rates.append(args.steps / run_trainer(fresh(), params, data, spec))
        print(f"  round {round_ + 1}: reference {reference_rates[-1]:.2f} steps/s, trainer {trainer_rates[-1]:.2f}")
    reference, trainer = statistics.median(reference_rates), statistics.median(trainer_rates)
    print(f"reference (diffusers dreambooth-style, encode every step): {reference:.2f} steps/s (median)")
    print(f"trainer (latents and embedding once):                    {trainer:.2f} steps/s (median)")
    print(f"ratio trainer/reference: {trainer / reference:.2f}x")


if __name__ == "__main__":
    main()
