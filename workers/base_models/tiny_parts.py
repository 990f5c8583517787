"""The parts the built-in tiny base models share: SD's 8x KL VAE and a CLIP text encoder's shape, at tiny widths."""

from __future__ import annotations

from diffusers import AutoencoderKL
from transformers import CLIPTextConfig, PreTrainedTokenizerFast

TEXT_WIDTH = 32  # every tiny text encoder's hidden size


def tiny_vae(**overrides: object) -> AutoencoderKL:
    """A VAE that downscales 8x, as SD's, FLUX's and SDXL's do (so 512 px is a 64x64 latent), at a tiny width;
    `overrides` set a family's own constants (latent channels, scaling and shift)."""
    config: dict[str, object] = dict(
        block_out_channels=[16, 32, 32, 64],
        norm_num_groups=16,
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        latent_channels=4,
        sample_size=64,
    )
    return AutoencoderKL(**{**config, **overrides})  # type: ignore[arg-type]


def tiny_clip_config(tokenizer: PreTrainedTokenizerFast, max_tokens: int, **extra: object) -> CLIPTextConfig:
    """A 5-layer CLIP text encoder's configuration for `tokenizer`'s vocabulary; `extra` adds what a family's own
    encoder has (a projection, an activation)."""
    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=TEXT_WIDTH,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=len(tokenizer),
        max_position_embeddings=max_tokens,
        **extra,
    )
