"""tiny-shapes' components, untrained: the shapes its training fills in and its loading puts the weights back into.

One place for the architecture, so `train.py` and `ensure_tiny_shapes` cannot disagree. The tokenizer, the text
encoder's shape and the scheduler are tiny-sd's; the UNet is tiny-sd's at half the width, and the VAE downscales
4x instead of 8x, so the 64 px pictures it is trained at are a 16x16 latent, enough cells for a triangle's apex to
survive the round trip (at 8x a shape is a few latent cells across). The widths are what trains in minutes on a
shared CPU. Group norms keep several channels per group: with one channel a group is an instance norm, which
removes each channel's mean over the picture, and a VAE built that way came back colourless.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, PreTrainedTokenizerFast

from workers.base_models.tiny_parts import TEXT_WIDTH, tiny_clip_config
from workers.base_models.tokenizer import byte_level_tokenizer

SIDE = 64  # the pictures' side in training (and the default size)
MAX_TOKENS = 77
VAE_FACTOR = 4
WEIGHTS_DIR = Path(__file__).parent / "weights"
COMPONENTS = ("unet", "vae", "text_encoder")
BUILD_INFO = "build.json"  # the VAE's scaling factor and how the weights were made


def weights_file(component: str, folder: Path = WEIGHTS_DIR) -> Path:
    """Where `component`'s trained weights are kept."""
    return folder / f"{component}.safetensors"


def tokenizer() -> PreTrainedTokenizerFast:
    """The byte-level tokenizer every built-in tiny model uses."""
    return byte_level_tokenizer(MAX_TOKENS)


def text_encoder(tokens: PreTrainedTokenizerFast) -> CLIPTextModel:
    """tiny-sd's CLIP shape; its weights are whatever the caller seeds or loads."""
    return CLIPTextModel(tiny_clip_config(tokens, MAX_TOKENS))


def vae(scaling_factor: float = 1.0) -> AutoencoderKL:
    """A KL VAE that downscales 4x (three blocks), 4 latent channels as SD 1.5's."""
    return AutoencoderKL(
        block_out_channels=[8, 16, 32],
        norm_num_groups=2,  # groups of several channels: a group of one is instance norm, which erases colour
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        latent_channels=4,
        sample_size=SIDE,
        scaling_factor=scaling_factor,
    )


def unet() -> UNet2DConditionModel:
    """tiny-sd's UNet at half its width: attention (self and cross, on the text's hidden states) at 1/2 and 1/4 of
    the latent."""
    return UNet2DConditionModel(
        block_out_channels=(16, 32, 32),
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=SIDE // VAE_FACTOR,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
    )


def scheduler() -> DDIMScheduler:
    """SD 1.5's noise schedule (epsilon prediction), sampled with DDIM as tiny-sd is."""
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def token_ids(tokens: PreTrainedTokenizerFast, prompts: list[str]) -> torch.Tensor:
    """`prompts` tokenized as the SD pipeline's `encode_prompt` does: padded to the maximum length, truncated."""
    return tokens(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
