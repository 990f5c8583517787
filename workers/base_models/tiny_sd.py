"""`tiny-sd`: a tiny Stable Diffusion with deterministic random weights, for development and tests.

It has the real architecture (UNet with cross-attention, KL VAE, CLIP text encoder, a byte-level
tokenizer so any trigger word gets its own tokens) at a size that trains and samples in seconds on a CPU.
It is saved with `save_pretrained` once and then loaded like any other base model, so every code path
that serves real models serves it too. Its pictures mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from workers.base_models.builtin import ensure_built
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
    vae = AutoencoderKL(
        block_out_channels=[16, 32, 32, 64],
        norm_num_groups=16,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=5,
            vocab_size=len(tokenizer),
            max_position_embeddings=MAX_TOKENS,
        )
    )
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
