"""`tiny-sd`: a tiny Stable Diffusion with deterministic random weights, for development and tests.

It has the real architecture (UNet with cross-attention, KL VAE, CLIP text encoder, a byte-level
tokenizer so any trigger word gets its own tokens) at a size that trains and samples in seconds on a CPU.
It is saved with `save_pretrained` once and then loaded like any other base model, so every code path
that serves real models serves it too. Its pictures mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel

from workers.base_models.builtin import ensure_built
from workers.base_models.tiny_parts import tiny_clip_config, tiny_vae
from workers.base_models.tokenizer import byte_level_tokenizer

# Bump when the architecture below changes, so cached copies are rebuilt rather than reused.
BUILD_VERSION = 2
DEFAULT_SEED = 0
MAX_TOKENS = 77


def build_tiny_sd(seed: int = DEFAULT_SEED) -> StableDiffusionPipeline:
    """Make the pipeline in memory; the same seed always gives the same weights."""
    tokenizer = byte_level_tokenizer(MAX_TOKENS)
    torch.manual_seed(seed)
    # SD's shape at a fraction of its width: a VAE that downscales 8x (so 512 px is a 64x64 latent, as in
    # SD 1.5) and attention only at 1/2 and 1/4 of the latent, so the custom-models API's 512..1536 px requests take
    # seconds on a CPU. (Diffusers' test model downscales 2x, which put 16k-token self-attention into a
    # 512 px image: 22 s per step.)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    vae = tiny_vae()
    text_encoder = CLIPTextModel(tiny_clip_config(tokenizer, MAX_TOKENS))
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
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


def ensure_tiny_sd(cache_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """The folder holding tiny-sd's saved weights, building it once; safe against concurrent builders."""
    return ensure_built(cache_dir, f"tiny-sd-v{BUILD_VERSION}-seed{seed}", lambda: build_tiny_sd(seed))
