"""Each download format, loaded back into a fresh pipeline by diffusers' own `load_lora_weights` (which detects
kohya keys), generates what the service generates with the original adapter; and the kohya form converts back to
the original's exact tensors.

Tolerance: the largest per-channel pixel difference of the two images (0..255), at most `TOLERANCE`. Measured 0
on every family: a scale-1 export moves no weight bit, and diffusers' kohya reader only renames and splits.

tiny-flux at its tiny width: diffusers' kohya FLUX reader splits a single block's fused `linear1` at FLUX.1's
hard-coded widths (3072, 3072, 3072, 12288), so a tiny single block's q, k, v and MLP input cannot go through it
(it asserts). Its adapter through diffusers covers the double blocks, the single blocks' `linear2` and the final
layer; the single blocks' fused layers are checked through our own reader (kohya -> diffusers -> identical tensors
-> identical images).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image

from events.generation import AdapterRef, GenerationRequestedData
from infra.base_models import BUILTIN_MODELS, TINY_FLUX_TARGETS, TINY_SD_TARGETS
from infra.lora_files.convert import to_diffusers, to_kohya
from infra.lora_files.kohya_metadata import KohyaMetadata
from infra.lora_files.safetensors_file import read_file
from infra.settings import Settings
from tests.conftest import MODEL_CACHE
from workers.generator.image_metadata import output_seed
from workers.generator.pipelines import PipelineCache, family_arguments, generate
from workers.module_construction import MODULE_CONSTRUCTION
from workers.trainer import lora

TOLERANCE = 0
# tiny-flux's layers diffusers' kohya reader can split at a tiny width (see the module docstring).
FLUX_DIFFUSERS_READABLE = tuple(
    f"transformer_blocks.{i}.{m}" for i in range(2) for m in TINY_FLUX_TARGETS if not m.startswith("proj_")
) + tuple(f"single_transformer_blocks.{i}.proj_out" for i in range(4))


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="module")
def loaders(load_tiny_sd: Callable, load_tiny_sdxl: Callable, load_tiny_flux: Callable) -> dict[str, Callable]:
    return {"tiny-sd": load_tiny_sd, "tiny-sdxl": load_tiny_sdxl, "tiny-flux": load_tiny_flux}


def adapter_with_text_encoders(pipeline: DiffusionPipeline, seed: int, targets: tuple[str, ...]) -> bytes:
    """Random LoRA weights on the denoiser's `targets` and on every CLIP encoder's attention (kohya's `lora_te`
    names get exercised too); the pipeline is thrown away after."""
    component, denoiser = lora.denoiser_of(pipeline)
    modules = {component: denoiser}
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipeline, name, None)
        if encoder is not None and type(encoder).__name__.startswith("CLIP"):
            modules[name] = encoder
    generator = torch.Generator().manual_seed(seed)
    with MODULE_CONSTRUCTION:
        for name, module in modules.items():
            module.requires_grad_(False)
            wanted = list(targets) if name == component else lora.TEXT_ENCODER_TARGETS
            module.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=wanted))
    with torch.no_grad():
        for module in modules.values():
            for param in (p for p in module.parameters() if p.requires_grad):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return lora.save_adapter_file(pipeline, {name: get_peft_model_state_dict(m) for name, m in modules.items()})


def job(base: str, key: str | None = None) -> GenerationRequestedData:
    adapters = [AdapterRef(modelId="mod_x", trainingId="trn_x", key=key)] if key else []
    return GenerationRequestedData.model_validate(
        dict(
            jobId="job_formats",
            modelId=base,
            baseModel=base,
            prompt="a photo of lfzq",
            width=64,
            height=64,
            guidanceScale=3.5,
            numOutputs=1,
            numInferenceSteps=2,
            seed=7,
            adapters=adapters,
        )
    )


def pixels(image: bytes | Image.Image) -> np.ndarray:
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def diffusers_image(pipeline: DiffusionPipeline, request: GenerationRequestedData) -> Image.Image:
    """What the pipeline makes for `request`, called as the generator calls it (same seed, same arguments)."""
    family = family_arguments(pipeline, request)
    with torch.inference_mode():
        return pipeline(
            prompt=request.prompt,
            width=request.width,
            height=request.height,
            num_inference_steps=request.numInferenceSteps,
            generator=[torch.Generator("cpu").manual_seed(output_seed(request.seed, 0))],
            **family,
        ).images[0]


def metadata(base: str) -> KohyaMetadata:
    spec = BUILTIN_MODELS[base]
    return KohyaMetadata(spec.family, base, "formats", rank=4, alpha=4.0, resolution=64, trigger_word="lfzq")


def service_image(cache: PipelineCache, base: str, adapter: bytes) -> bytes:
    key = f"trainings/trn_{base}/adapter.safetensors"
    return generate(cache, job(base, key), {key: adapter}.__getitem__).images[0]


CASES = {
    "tiny-sd": TINY_SD_TARGETS,
    "tiny-sdxl": TINY_SD_TARGETS,
    "tiny-flux": FLUX_DIFFUSERS_READABLE,
}


@pytest.mark.parametrize("base", sorted(CASES))
@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_a_download_loaded_by_diffusers_generates_the_services_image(
    cache: PipelineCache, loaders: dict[str, Callable], tmp_path: Path, base: str, fmt: str
) -> None:
    load = loaders[base]
    adapter = adapter_with_text_encoders(load(), seed=3, targets=CASES[base])
    expected = service_image(cache, base, adapter)
    assert np.abs(pixels(expected) - pixels(generate(cache, job(base), {}.__getitem__).images[0])).max() > 20
    data = adapter if fmt == "diffusers" else to_kohya(adapter, BUILTIN_MODELS[base], metadata(base))
    if fmt == "kohya":
        assert all(k.startswith("lora_") for k in read_file(data)[1])
    file = tmp_path / "adapter.safetensors"
    file.write_bytes(data)
    pipeline = load()
    with MODULE_CONSTRUCTION:
        pipeline.load_lora_weights(str(file))
    # every layer of the file landed (the text encoders' too): none dropped by a name diffusers could not map
    adapted = sum(
        name.endswith(".lora_A")
        for c in ("unet", "transformer", "text_encoder", "text_encoder_2")
        if isinstance(m := getattr(pipeline, c, None), torch.nn.Module)
        for name, _ in m.named_modules()
    )
    assert adapted == sum(k.endswith(".lora_A.weight") for k in read_file(adapter)[1])
    got = diffusers_image(pipeline, job(base))
    assert int(np.abs(pixels(got) - pixels(expected)).max()) <= TOLERANCE


@pytest.mark.parametrize("base", sorted(CASES))
def test_kohya_converts_back_to_the_original_bytes(loaders: dict[str, Callable], base: str) -> None:
    spec = BUILTIN_MODELS[base]
    targets = TINY_FLUX_TARGETS if base == "tiny-flux" else TINY_SD_TARGETS  # all of tiny-flux, fused layers too
    adapter = adapter_with_text_encoders(loaders[base](), seed=4, targets=targets)
    kohya = to_kohya(adapter, spec, metadata(base))
    assert to_diffusers(kohya, spec) == adapter
    _, original = read_file(adapter)
    _, back = read_file(to_diffusers(kohya, spec))
    assert all(np.array_equal(original[k].array, back[k].array) for k in original)


def test_the_fused_flux_layers_generate_the_same_image_through_our_reader(
    cache: PipelineCache, loaders: dict[str, Callable]
) -> None:
    spec = BUILTIN_MODELS["tiny-flux"]
    adapter = adapter_with_text_encoders(loaders["tiny-flux"](), seed=5, targets=TINY_FLUX_TARGETS)
    kohya = to_kohya(adapter, spec, metadata("tiny-flux"))
    assert any("single_blocks_0_linear1" in k for k in read_file(kohya)[1])
    assert service_image(cache, "tiny-flux", to_diffusers(kohya, spec)) == service_image(cache, "tiny-flux", adapter)
