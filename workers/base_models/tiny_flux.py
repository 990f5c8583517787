"""`tiny-flux`: a tiny FLUX.1 (dev-shaped) with deterministic random weights, for development and tests.

FLUX's real structure at a fraction of its width: a CLIP text encoder whose pooled output and a T5 encoder whose
hidden states condition a transformer of double-stream and single-stream blocks with rotary position ids, a
guidance embedding (FLUX.1-dev's distilled guidance), a KL VAE with FLUX's scaling and shift whose latents the
pipeline packs into 2x2 patches, and the flow-matching Euler scheduler with FLUX.1-dev's resolution-dependent
shift. It is saved with `save_pretrained` once and then loaded like any other base model. Its pictures mean
nothing.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, T5Config, T5EncoderModel

from workers.base_models.builtin import ensure_built
from workers.base_models.tiny_parts import TEXT_WIDTH, tiny_clip_config, tiny_vae
from workers.base_models.tokenizer import byte_level_tokenizer

# Bump when the architecture below changes, so cached copies are rebuilt rather than reused.
BUILD_VERSION = 1
DEFAULT_SEED = 0
CLIP_TOKENS = 77
T5_TOKENS = 128  # FLUX.1-dev reads 512 T5 tokens; a tiny model's prompts are short
LATENT_CHANNELS = 4  # packed 2x2: the transformer reads 16 channels per token (FLUX.1: 16 -> 64)


def build_tiny_flux(seed: int = DEFAULT_SEED) -> FluxPipeline:
    """Make the pipeline in memory; the same seed always gives the same weights."""
    clip_tokenizer = byte_level_tokenizer(CLIP_TOKENS)
    t5_tokenizer = byte_level_tokenizer(T5_TOKENS, with_bos=False)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=2,
        num_single_layers=4,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=TEXT_WIDTH,
        pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),  # sums to the head size, as FLUX's (16, 56, 56) sums to 128
    )
    vae = tiny_vae(
        latent_channels=LATENT_CHANNELS,
        scaling_factor=0.3611,  # FLUX.1's VAE constants
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    text_encoder = CLIPTextModel(tiny_clip_config(clip_tokenizer, CLIP_TOKENS))
    text_encoder_2 = T5EncoderModel(
        T5Config(
            d_model=TEXT_WIDTH,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            vocab_size=len(t5_tokenizer),
            pad_token_id=t5_tokenizer.pad_token_id,
            eos_token_id=t5_tokenizer.eos_token_id,
            decoder_start_token_id=t5_tokenizer.pad_token_id,
            feed_forward_proj="gated-gelu",
            is_encoder_decoder=False,
        )
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def ensure_tiny_flux(cache_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """The folder holding tiny-flux's saved weights, building it once; safe against concurrent builders."""
    return ensure_built(cache_dir, f"tiny-flux-v{BUILD_VERSION}-seed{seed}", lambda: build_tiny_flux(seed))
