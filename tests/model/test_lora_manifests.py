"""The committed layer manifests are what the architectures give now (`python -m tests.model.lora_manifests`)."""

from __future__ import annotations

import torch

from infra.base_models import BUILTIN_MODELS, TINY_SD, BaseModelSpec, Family
from infra.lora_files.manifests import load_manifest, manifest_for
from tests.model.lora_manifests import MANIFEST_DIR, _tiny_shapes, generate, layers_of


def test_committed_manifests_match_the_architectures() -> None:
    for file_name, text in generate().items():
        assert (MANIFEST_DIR / file_name).read_text("utf-8") == text, f"{file_name} drifted: regenerate it"


def test_tiny_shapes_has_its_own_layers() -> None:
    # its UNet is narrower than tiny-sd's (workers/base_models/tiny_shapes/parts.py)
    assert manifest_for(BUILTIN_MODELS["tiny-shapes"]).layers == _tiny_shapes().layers


def test_every_builtin_and_family_has_a_manifest() -> None:
    for spec in BUILTIN_MODELS.values():
        assert manifest_for(spec).family is spec.family
    for family in Family:
        spec = BaseModelSpec(
            name="x", source="s3://b/x", family=family, default_size=512, max_side=1024, default_steps=20
        )
        assert manifest_for(spec).family is family and not manifest_for(spec).name.startswith("tiny")


def test_manifest_shapes_are_real_layer_shapes() -> None:
    # the real SD 1.5 widths: CLIP-L's q_proj and the UNet's first cross-attention key (768 text features in)
    sd = load_manifest("sd-1_5")
    assert sd.shape("text_encoder", "encoder.layers.0.self_attn.q_proj") == (768, 768)
    assert sd.shape("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k") == (320, 768)
    assert load_manifest("flux.1").shape("transformer", "single_transformer_blocks.37.proj_mlp") == (12288, 3072)
    assert layers_of(torch.nn.Sequential(torch.nn.Linear(3, 2)))["0"] == (2, 3)
    assert manifest_for(TINY_SD).denoiser == "unet"
