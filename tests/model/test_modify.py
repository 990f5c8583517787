"""Image-to-image and inpainting through the generator's own `generate`, on tiny-sd with real diffusers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from events.generation import AdapterRef, GenerationMode, GenerationRequestedData
from infra.settings import Settings
from tests.conftest import MODEL_CACHE
from tests.model.conftest import PipelineFactory, random_adapter
from workers.generator.pipelines import InvalidInput, PipelineCache, decode_inputs, generate

SIZE = 64


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def photo(seed: int = 0) -> Image.Image:
    """A colourful input that differs from anything tiny-sd's random VAE decodes to (a flat grey)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))


def right_half_mask() -> Image.Image:
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[:, SIZE // 2 :] = 255
    return Image.fromarray(mask)


def request(mode: GenerationMode, **overrides: object) -> GenerationRequestedData:
    job = "job_modify"
    fields: dict[str, object] = dict(
        jobId=job,
        mode=mode,
        modelId="tiny-sd",
        baseModel="tiny-sd",
        prompt="a photo of lfzq",
        width=SIZE,
        height=SIZE,
        guidanceScale=7.5,
        numOutputs=1,
        numInferenceSteps=8,
        seed=3,
        initImageKey=f"jobs/{job}/inputs/image.png",
    )
    if mode is GenerationMode.INPAINTING:
        fields["maskImageKey"] = f"jobs/{job}/inputs/mask.png"
    fields.update(overrides)
    return GenerationRequestedData.model_validate(fields)


def run(cache: PipelineCache, data: GenerationRequestedData, image: Image.Image, mask: Image.Image | None = None):
    inputs = decode_inputs(data, png(image), png(mask) if mask is not None else None)
    return generate(cache, data, lambda key: b"", inputs)


def test_inpainting_keeps_every_unmasked_pixel_and_changes_the_masked_ones(cache: PipelineCache) -> None:
    original = photo()
    result = run(cache, request(GenerationMode.INPAINTING), original, right_half_mask())
    out, before = pixels(result.images[0]), np.asarray(original, dtype=np.int16)
    # The unmasked half is pasted back from the input, so PNG output must match it exactly: tolerance 0.
    assert np.array_equal(out[:, : SIZE // 2], before[:, : SIZE // 2])
    # The masked half is the model's: far from the random input (a mean difference of dozens of levels).
    assert np.abs(out[:, SIZE // 2 :] - before[:, SIZE // 2 :]).mean() > 20


def test_inpainting_through_an_adapter_differs_from_the_base_model(
    cache: PipelineCache, load_tiny_sd: PipelineFactory
) -> None:
    adapter = random_adapter(load_tiny_sd, seed=5)
    ref = AdapterRef(modelId="mod_a", trainingId="t5", key="trainings/t5/adapter.safetensors")
    base = run(cache, request(GenerationMode.INPAINTING), photo(), right_half_mask())
    inputs = decode_inputs(request(GenerationMode.INPAINTING), png(photo()), png(right_half_mask()))
    adapted = generate(cache, request(GenerationMode.INPAINTING, adapters=[ref]), lambda key: adapter, inputs)
    assert base.images != adapted.images
    assert np.array_equal(pixels(adapted.images[0])[:, :32], pixels(base.images[0])[:, :32])


def test_image_to_image_strength_zero_returns_the_input_and_more_strength_changes_more(cache: PipelineCache) -> None:
    original = photo(1)
    before = np.asarray(original, dtype=np.int16)
    changes = []
    for strength in (0.0, 0.3, 1.0):
        result = run(cache, request(GenerationMode.IMAGE_TO_IMAGE, strength=strength), original)
        out = pixels(result.images[0])
        assert out.shape == before.shape
        changes.append(np.abs(out - before).mean())
    assert changes[0] == 0
    assert changes[1] > 0
    assert result.images != run(cache, request(GenerationMode.IMAGE_TO_IMAGE, strength=0.3), original).images


def test_the_same_modify_request_gives_the_same_bytes(cache: PipelineCache) -> None:
    data = request(GenerationMode.IMAGE_TO_IMAGE, strength=0.6, numOutputs=2)
    first, second = run(cache, data, photo(2)), run(cache, data, photo(2))
    assert first.images == second.images and len(first.images) == 2


def test_an_input_that_is_not_an_image_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="not a readable image"):
        decode_inputs(request(GenerationMode.IMAGE_TO_IMAGE), b"GIF89a-not-really", None)


def test_inputs_of_another_size_are_fitted_to_the_request() -> None:
    data = request(GenerationMode.INPAINTING)
    big = photo().resize((SIZE * 2, SIZE * 2))
    mask = right_half_mask().resize((SIZE * 2, SIZE * 2))
    inputs = decode_inputs(data, png(big), png(mask))
    assert inputs.image.size == (SIZE, SIZE) and inputs.mask is not None and inputs.mask.size == (SIZE, SIZE)
    assert set(np.unique(np.asarray(inputs.mask))) <= {0, 255}
