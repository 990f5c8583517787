"""Generates infra/lora_files/manifests/*.json: every nn.Linear and nn.Conv2d of each base model's LoRA-adaptable
components with its weight shape, built on the meta device (no weights, no memory), so the torch-free checks know
the layers. Lives beside the drift test because it needs torch, which infra/ may not import.

    python -m tests.model.lora_manifests          # rewrites the files
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from bench.random_shapes import build_flux_random, build_sdxl_random
from infra.base_models import Family
from infra.lora_files.manifests import Manifest
from workers.base_models.tiny_flux import build_tiny_flux
from workers.base_models.tiny_sd import build_tiny_sd
from workers.base_models.tiny_sdxl import build_tiny_sdxl
from workers.base_models.tiny_shapes import parts as shapes_parts

MANIFEST_DIR = Path(__file__).resolve().parents[2] / "infra" / "lora_files" / "manifests"
# The components a LoRA may adapt (FLUX's T5 never is: sd-scripts and diffusers leave it frozen).
ADAPTABLE = ("unet", "transformer", "text_encoder", "text_encoder_2")


def layers_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Every Linear and Conv2d under `module` by its path, with its weight's shape."""
    return {
        name: tuple(child.weight.shape)
        for name, child in module.named_modules()
        if isinstance(child, torch.nn.Linear | torch.nn.Conv2d)
    }


def _pipeline_manifest(name: str, family: Family, description: str, pipeline: DiffusionPipeline) -> Manifest:
    components = {
        component: layers_of(module)
        for component in ADAPTABLE
        if isinstance(module := getattr(pipeline, component, None), torch.nn.Module)
        and not (family is Family.FLUX and component == "text_encoder_2")
    }
    return Manifest(name, family, description, components)


def _sd15() -> Manifest:
    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)  # diffusers' defaults are SD 1.5's
        clip_l = CLIPTextModel(
            CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)
        )
    return Manifest(
        "sd-1_5",
        Family.SD15,
        "Stable Diffusion 1.5 (runwayml): UNet and CLIP ViT-L/14",
        {"unet": layers_of(unet), "text_encoder": layers_of(clip_l)},
    )


def _tiny_shapes() -> Manifest:
    with torch.device("meta"):
        unet, text_encoder = shapes_parts.unet(), shapes_parts.text_encoder(shapes_parts.tokenizer())
    return Manifest(
        "tiny-shapes",
        Family.SD15,
        "the built-in tiny-shapes",
        {"unet": layers_of(unet), "text_encoder": layers_of(text_encoder)},
    )


BUILDERS: dict[str, Callable[[], Manifest]] = {
    "sd-1_5": _sd15,
    "sd-xl": lambda: _pipeline_manifest(
        "sd-xl",
        Family.SDXL,
        "SDXL base 1.0: UNet, CLIP ViT-L/14 and OpenCLIP ViT-bigG/14",
        build_sdxl_random(device="meta"),
    ),
    "flux.1": lambda: _pipeline_manifest(
        "flux.1", Family.FLUX, "FLUX.1-dev: transformer and CLIP ViT-L/14", build_flux_random(device="meta")
    ),
    "tiny-sd": lambda: _pipeline_manifest("tiny-sd", Family.SD15, "the built-in tiny-sd", build_tiny_sd()),
    "tiny-sdxl": lambda: _pipeline_manifest("tiny-sdxl", Family.SDXL, "the built-in tiny-sdxl", build_tiny_sdxl()),
    "tiny-flux": lambda: _pipeline_manifest("tiny-flux", Family.FLUX, "the built-in tiny-flux", build_tiny_flux()),
    "tiny-shapes": _tiny_shapes,
}


def generate() -> dict[str, str]:
    """Each manifest file's name and the JSON it should hold now."""
    return {f"{name}.json": build().to_json() for name, build in BUILDERS.items()}


if __name__ == "__main__":
    MANIFEST_DIR.mkdir(exist_ok=True)
    for file_name, text in generate().items():
        (MANIFEST_DIR / file_name).write_text(text, encoding="utf-8")
        print(file_name, len(text.encode()), "bytes")
