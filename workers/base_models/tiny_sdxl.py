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
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from workers.base_models.builtin import ensure_built
from workers.base_models.tokenizer import byte_level_tokenizer

# Bump when the architecture below changes, so cached copies are rebuilt rather than reused.
BUILD_VERSION = 1
DEFAULT_SEED = 0
MAX_TOKENS = 77
TEXT_WIDTH = 32  # each encoder's hidden size; the UNet attends to both, side by side
TIME_EMBED_DIM = 8  # per size/crop id: six ids (original size, crop top-left, target size)


def _clip_config(tokenizer_len: int, bos: int, eos: int, pad: int, **extra: object) -> CLIPTextConfig:
    return CLIPTextConfig(
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        hidden_size=TEXT_WIDTH,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=tokenizer_len,
        max_position_embeddings=MAX_TOKENS,
        hidden_act="gelu",
        **extra,
    )


def build_tiny_sdxl(seed: int = DEFAULT_SEED) -> StableDiffusionXLPipeline:
    """Make the pipeline in memory; the same seed always gives the same weights."""
    tokenizer = byte_level_tokenizer(MAX_TOKENS)
    ids = (len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
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
    vae = AutoencoderKL(
        block_out_channels=[16, 32, 32, 64],
        norm_num_groups=16,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=64,
        scaling_factor=0.13025,  # SDXL's VAE constant
    )
    text_encoder = CLIPTextModel(_clip_config(*ids))
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(*ids, projection_dim=TEXT_WIDTH))
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
