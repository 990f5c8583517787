"""SDXL- and FLUX.1-shaped pipelines with random weights, for the benches on a GPU: the compute of the real models
without downloading them (their pictures mean nothing).

`sdxl-random` is SDXL base 1.0's architecture (UNet 320-1280 with 10-deep transformer stacks and the size/crop
conditioning, the SDXL VAE, CLIP ViT-L and OpenCLIP ViT-bigG text encoders); `flux-random` is FLUX.1-dev's
(19 double-stream and 38 single-stream blocks at width 3072 with the guidance embedding, the 16-channel VAE,
CLIP ViT-L and T5-XXL). They are built directly on the target device in its dtype, so a 17-billion-parameter
FLUX never passes through host memory in float32. `tiny=True` builds the same code path at a few thousandths
of the width, for a smoke run on a CPU in seconds; `parameter_counts` checks the full shapes without memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from infra.base_models import (
    ATTENTION_TARGETS,
    FAMILY_DEFAULTS,
    TINY_FLUX_TARGETS,
    TINY_SD_TARGETS,
    BaseModelSpec,
    Family,
)
from workers.base_models.tokenizer import byte_level_tokenizer

CLIP_TOKENS = 77


@dataclass(frozen=True)
class ClipShape:
    """A CLIP text encoder's size."""

    width: int
    layers: int
    heads: int
    feed_forward: int
    activation: str


def _clip(shape: ClipShape, tokens: int, with_projection: bool = False) -> CLIPTextModel:
    tokenizer = byte_level_tokenizer(tokens)
    config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=shape.width,
        intermediate_size=shape.feed_forward,
        num_attention_heads=shape.heads,
        num_hidden_layers=shape.layers,
        vocab_size=len(tokenizer),
        max_position_embeddings=tokens,
        hidden_act=shape.activation,
        projection_dim=shape.width,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


CLIP_L = ClipShape(width=768, layers=12, heads=12, feed_forward=3072, activation="quick_gelu")
CLIP_BIG_G = ClipShape(width=1280, layers=32, heads=20, feed_forward=5120, activation="gelu")
# The tiny shapes keep the real ones' structure; their two SDXL encoders differ in width, as the real ones do.
TINY_CLIP_L = ClipShape(width=32, layers=2, heads=4, feed_forward=37, activation="quick_gelu")
TINY_CLIP_G = ClipShape(width=48, layers=2, heads=4, feed_forward=53, activation="gelu")


@contextmanager
def _modules_on(device: torch.device | str, dtype: torch.dtype) -> Iterator[None]:
    """Create modules' parameters directly on `device` in `dtype` (schedulers and tokenizers stay outside)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def build_sdxl_random(
    tiny: bool = False, seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusionXLPipeline:
    """An SDXL base 1.0-shaped pipeline with random weights (at a tiny width when `tiny`), made on `device`."""
    torch.manual_seed(seed)
    clip_l, clip_g = (TINY_CLIP_L, TINY_CLIP_G) if tiny else (CLIP_L, CLIP_BIG_G)
    time_ids = 8 if tiny else 256  # one embedding per size/crop id, six of them
    with _modules_on(device, dtype):
        unet, vae = _sdxl_unet(tiny, clip_l, clip_g, time_ids), _vae(tiny, latent_channels=4, scaling_factor=0.13025)
        text_encoder, text_encoder_2 = _clip(clip_l, CLIP_TOKENS), _clip(clip_g, CLIP_TOKENS, with_projection=True)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=byte_level_tokenizer(CLIP_TOKENS),
        tokenizer_2=byte_level_tokenizer(CLIP_TOKENS),
        unet=unet,
        scheduler=scheduler,
    )


def _sdxl_unet(tiny: bool, clip_l: ClipShape, clip_g: ClipShape, time_ids: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(32, 64, 64) if tiny else (320, 640, 1280),
        layers_per_block=1 if tiny else 2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4, 4) if tiny else (5, 10, 20),
        transformer_layers_per_block=(1, 1, 2) if tiny else (1, 2, 10),
        cross_attention_dim=clip_l.width + clip_g.width,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_ids,
        projection_class_embeddings_input_dim=6 * time_ids + clip_g.width,
        norm_num_groups=16 if tiny else 32,
    )


def _vae(tiny: bool, latent_channels: int, scaling_factor: float, **flux: object) -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[16, 32, 32, 64] if tiny else [128, 256, 512, 512],
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1 if tiny else 2,
        latent_channels=latent_channels,
        norm_num_groups=16 if tiny else 32,
        sample_size=1024,
        scaling_factor=scaling_factor,
        **flux,
    )


def build_flux_random(
    tiny: bool = False, seed: int = 0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> FluxPipeline:
    """A FLUX.1-dev-shaped pipeline with random weights (at a tiny width when `tiny`), made on `device`."""
    torch.manual_seed(seed)
    clip = TINY_CLIP_L if tiny else CLIP_L
    t5_tokens = 128 if tiny else 512
    t5_tokenizer = byte_level_tokenizer(t5_tokens, with_bos=False)
    latent_channels = 4 if tiny else 16
    t5_width = 32 if tiny else 4096
    with _modules_on(device, dtype):
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=4 * latent_channels,  # 2x2 packed latents
            num_layers=2 if tiny else 19,
            num_single_layers=4 if tiny else 38,
            attention_head_dim=16 if tiny else 128,
            num_attention_heads=2 if tiny else 24,
            joint_attention_dim=t5_width,
            pooled_projection_dim=clip.width,
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6) if tiny else (16, 56, 56),
        )
        # FLUX.1's VAE constants
        vae = _vae(tiny, latent_channels, 0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
        text_encoder = _clip(clip, CLIP_TOKENS)
        t5 = T5EncoderModel(
            T5Config(
                d_model=t5_width,
                d_kv=8 if tiny else 64,
                d_ff=37 if tiny else 10240,
                num_layers=2 if tiny else 24,
                num_heads=4 if tiny else 64,
                relative_attention_num_buckets=32,
                vocab_size=len(t5_tokenizer),
                pad_token_id=t5_tokenizer.pad_token_id,
                eos_token_id=t5_tokenizer.eos_token_id,
                decoder_start_token_id=t5_tokenizer.pad_token_id,
                feed_forward_proj="gated-gelu",
                is_encoder_decoder=False,
            )
        )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=byte_level_tokenizer(CLIP_TOKENS),
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )


def random_spec(name: str, family: Family, tiny: bool) -> BaseModelSpec:
    """The base-model entry the trainer and the adapters read for a random shape: its family's defaults, and at
    tiny width the tiny models' wider LoRA targets (random tiny weights give attention alone too little say)."""
    defaults = dict(FAMILY_DEFAULTS[family])
    if tiny:
        defaults["lora_targets"] = TINY_FLUX_TARGETS if family is Family.FLUX else TINY_SD_TARGETS
    elif family is not Family.FLUX:
        defaults["lora_targets"] = ATTENTION_TARGETS
    return BaseModelSpec(name=name, source=f"bench:{name}", family=family, **defaults)  # type: ignore[arg-type]


def parameter_counts(build: Callable[..., DiffusionPipeline]) -> dict[str, int]:
    """Each component's parameter count at full size, built on the meta device (no memory, no compute)."""
    pipeline = build(tiny=False, device="meta")
    return {
        name: sum(p.numel() for p in module.parameters())
        for name, module in pipeline.components.items()
        if isinstance(module, torch.nn.Module)
    }


if __name__ == "__main__":
    for shape, builder in (("sdxl-random", build_sdxl_random), ("flux-random", build_flux_random)):
        counts = parameter_counts(builder)
        print(shape, {name: f"{count / 1e9:.3f}B" for name, count in counts.items()})
