"""Generation on tiny-sdxl and tiny-flux through the generator's own `generate`: every mode at the request's size,
adapters switched, mixed and switched off, deterministic per seed; FLUX's guidance, negative prompt and size grid."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from events.generation import AdapterRef, GenerationMode, GenerationRequestedData
from infra.settings import Settings
from tests.conftest import MODEL_CACHE
from tests.model.conftest import random_adapter
from workers.generator.pipelines import InvalidInput, PipelineCache, decode_inputs, family_arguments, generate

FAMILIES = ("tiny-sdxl", "tiny-flux")
# Not square, and on FLUX's 16-pixel grid: a pipeline that ignores the request's size shows it.
WIDTH, HEIGHT = 96, 64


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="module")
def adapter_files(load_tiny_sdxl: Callable, load_tiny_flux: Callable) -> dict[str, dict[str, bytes]]:
    """Two random adapters per family, by S3-style key."""
    loaders = {"tiny-sdxl": load_tiny_sdxl, "tiny-flux": load_tiny_flux}
    return {
        base: {f"trainings/{base}-{n}/adapter.safetensors": random_adapter(load, seed=n) for n in (1, 2)}
        for base, load in loaders.items()
    }


def request(
    base: str, mode: GenerationMode = GenerationMode.TEXT_TO_IMAGE, **fields: object
) -> GenerationRequestedData:
    inputs = {
        GenerationMode.TEXT_TO_IMAGE: {},
        GenerationMode.IMAGE_TO_IMAGE: {"initImageKey": "in/image.png"},
        GenerationMode.INPAINTING: {"initImageKey": "in/image.png", "maskImageKey": "in/mask.png"},
    }[mode]
    values: dict[str, object] = dict(
        jobId="job_family",
        mode=mode,
        modelId=base,
        baseModel=base,
        prompt="a photo of lfzq",
        width=WIDTH,
        height=HEIGHT,
        guidanceScale=3.5,
        numOutputs=1,
        numInferenceSteps=2,
        seed=5,
    )
    return GenerationRequestedData.model_validate(values | inputs | fields)


def ref(key: str, scale: float = 1.0) -> AdapterRef:
    return AdapterRef(modelId="mod_x", trainingId=key.split("/")[1], key=key, scale=scale)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def difference(a: bytes, b: bytes) -> int:
    """The largest per-channel pixel difference of two encoded images."""
    return int(np.abs(pixels(a) - pixels(b)).max())


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def no_adapters(key: str) -> bytes:
    raise AssertionError(f"a base-model request read adapter {key}")


@pytest.mark.parametrize("base", FAMILIES)
@pytest.mark.parametrize("mode", list(GenerationMode))
def test_every_mode_makes_images_at_the_requested_size(cache: PipelineCache, base: str, mode: GenerationMode) -> None:
    job = request(base, mode, numOutputs=2 if mode is GenerationMode.IMAGE_TO_IMAGE else 1)
    inputs = None
    if mode is not GenerationMode.TEXT_TO_IMAGE:
        # A square input of another size: the worker resizes it, and every pipeline must keep the request's size.
        photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (32, 0, 64, 64))
        inputs = decode_inputs(job, png(photo), png(mask) if mode is GenerationMode.INPAINTING else None)
    result = generate(cache, job, no_adapters, inputs)
    assert [Image.open(io.BytesIO(image)).size for image in result.images] == [(WIDTH, HEIGHT)] * job.numOutputs
    if mode is GenerationMode.INPAINTING:
        assert inputs is not None
        kept = pixels(result.images[0])[:, : WIDTH // 2 - 2]
        assert np.array_equal(kept, np.asarray(inputs.image, dtype=np.int16)[:, : WIDTH // 2 - 2])


@pytest.mark.parametrize("base", FAMILIES)
def test_adapters_switch_mix_and_switch_off(
    cache: PipelineCache, adapter_files: dict[str, dict[str, bytes]], base: str
) -> None:
    files = adapter_files[base]
    a, b = files

    def run(*adapters: AdapterRef) -> bytes:
        return generate(cache, request(base, adapters=list(adapters)), files.__getitem__).images[0]

    plain = run()
    first, mixed, second = run(ref(a)), run(ref(a, 0.5), ref(b, 0.5)), run(ref(b))
    assert difference(first, plain) > 20 and difference(second, plain) > 20, "an adapter must change the output"
    assert difference(mixed, first) > 20 and difference(mixed, second) > 20, "a mix must differ from either part"
    # A base-only request after adapters were active: the base model's output (same seed), the adapters still
    # loaded. Not byte-exact: through peft's switched-off layers some CPUs round differently (measured on tiny-sdxl:
    # one channel of one pixel off by one), while an adapter left on changes pixels by more than 20.
    assert difference(run(), plain) <= 1
    assert set(cache.adapters(base).loaded) == {a, b}


def test_flux_guidance_is_distilled_and_a_negative_prompt_turns_on_true_cfg(cache: PipelineCache) -> None:
    pipeline, _ = cache.get("tiny-flux")
    arguments = family_arguments(pipeline, request("tiny-flux", negativePrompt="blurry"))
    assert arguments == {
        "guidance_scale": 3.5,
        "negative_prompt": "blurry",
        "true_cfg_scale": 3.5,
        "max_sequence_length": 128,  # tiny-flux's T5 length, under FLUX.1's 512
    }
    plain = generate(cache, request("tiny-flux"), no_adapters).images[0]
    negative = generate(cache, request("tiny-flux", negativePrompt="blurry"), no_adapters).images[0]
    assert difference(negative, plain) > 5
    # At a scale of 1 true CFG would be the positive prompt alone: the negative prompt is not run at all.
    unguided = generate(cache, request("tiny-flux", guidanceScale=1.0), no_adapters).images[0]
    assert generate(cache, request("tiny-flux", guidanceScale=1.0, negativePrompt="blurry"), no_adapters).images == [
        unguided
    ]


def test_a_size_off_flux_grid_is_invalid_input(cache: PipelineCache) -> None:
    with pytest.raises(InvalidInput, match="multiples of 16"):
        generate(cache, request("tiny-flux", width=72), no_adapters)
    # SDXL's grid is the VAE's 8 pixels.
    assert generate(cache, request("tiny-sdxl", width=72), no_adapters).images
