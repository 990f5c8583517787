"""`tiny-sdxl`: a tiny Stable Diffusion XL with deterministic random weights, for development and tests.

SDXL's real structure at a fraction of its width: two CLIP text encoders (the second with a projection, whose
pooled output conditions the UNet with the size and crop ids through `text_time` embeddings), a UNet whose
cross-attention reads both encoders' hidden states side by side, linear attention projections and more
transformer layers in the deeper blocks, SD's 8x KL VAE, and an Euler scheduler. It is saved with
`save_pretrained` once and then loaded like any other base model. Its pictures mean nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from workers.base_models.builtin import ensure_built
from workers.base_models.tiny_parts import TEXT_WIDTH, tiny_clip_config, tiny_vae
from workers.base_models.tokenizer import byte_level_tokenizer

# Bump when the architecture below changes, so cached copies are rebuilt rather than reused.
BUILD_VERSION = 1
DEFAULT_SEED = 0
MAX_TOKENS = 77
TIME_EMBED_DIM = 8  # per size/crop id: six ids (original size, crop top-left, target size)


def build_tiny_sdxl(seed: int = DEFAULT_SEED) -> StableDiffusionXLPipeline:
    """Make the pipeline in memory; the same seed always gives the same weights."""
    tokenizer = byte_level_tokenizer(MAX_TOKENS)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4),
        transformer_layers_per_block=(1, 1, 2),
        use_linear_projection=True,
        cross_attention_dim=2 * TEXT_WIDTH,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM + TEXT_WIDTH,
    )
    vae = tiny_vae(scaling_factor=0.13025)  # SDXL's VAE constant
    text_encoder = CLIPTextModel(tiny_clip_config(tokenizer, MAX_TOKENS, hidden_act="gelu"))
    text_encoder_2 = CLIPTextModelWithProjection(
        tiny_clip_config(tokenizer, MAX_TOKENS, hidden_act="gelu", projection_dim=TEXT_WIDTH)
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=byte_level_tokenizer(MAX_TOKENS),
        unet=unet,
        scheduler=scheduler,
    )


def ensure_tiny_sdxl(cache_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """The folder holding tiny-sdxl's saved weights, building it once; safe against concurrent builders."""
    return ensure_built(cache_dir, f"tiny-sdxl-v{BUILD_VERSION}-seed{seed}", lambda: build_tiny_sdxl(seed))
