"""Seed 002 request validation and the defaults a job inherits from its base model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from events.records.models import ModelRecord
from events.usecases.adapters import model_adapter
from functions.api.errors import ApiError
from functions.api.schemas.images import GenerateImageRequest
from functions.api.services.adapters import ResolvedModel
from functions.api.services.generation import GenerationOptions, build_generation
from infra.base_models import TINY_SD


def test_seed_002_documented_body_is_accepted_verbatim() -> None:
    body = GenerateImageRequest.model_validate(
        {
            "modelId": "mod_zyx987",
            "prompt": "A photorealistic portrait of a woman with cyberpunk neon background, high detail",
            "negativePrompt": "low quality, blurry, text, watermark, ugly",
            "width": 1024,
            "height": 1024,
            "guidanceScale": 7.5,
            "numOutputs": 1,
        }
    )
    assert body.width == 1024 and body.numOutputs == 1


def build(body: GenerateImageRequest):
    return build_generation("job_1", GenerationOptions.of(body), ResolvedModel(spec=TINY_SD, adapters=[]))


def test_defaults_come_from_the_model() -> None:
    data = build(GenerateImageRequest(modelId="tiny-sd", prompt="p"))
    assert (data.width, data.height) == (TINY_SD.default_size, TINY_SD.default_size)
    assert data.numInferenceSteps == TINY_SD.default_steps
    assert data.guidanceScale == TINY_SD.default_guidance
    assert 0 <= data.seed < 2**32


def test_explicit_zero_guidance_is_kept() -> None:
    data = build(GenerateImageRequest(modelId="tiny-sd", prompt="p", guidanceScale=0))
    assert data.guidanceScale == 0


def test_model_limits_are_checked_before_queueing() -> None:
    with pytest.raises(ApiError) as info:
        build(GenerateImageRequest(modelId="tiny-sd", prompt="p", width=2048))
    assert info.value.status == 422 and info.value.field == "width"


def test_a_trained_model_generates_with_its_chosen_epoch_or_final_adapter() -> None:
    model = ModelRecord(
        modelId="mod_a",
        tenantId="tenant-a",
        name="a",
        baseModel="tiny-sd",
        type="sd-1_5-lora",
        adapterTrainingId="trn_1",
        adapterKey="trainings/trn_1/adapter.safetensors",
    )
    assert model_adapter(model).key == "trainings/trn_1/adapter.safetensors"
    chosen = model_adapter(model.model_copy(update={"epoch": "000002"}), scale=0.5)
    assert chosen.key == "trainings/trn_1/checkpoints/000002/adapter.safetensors"
    assert (chosen.epoch, chosen.scale, chosen.trainingId) == ("000002", 0.5, "trn_1")


@pytest.mark.parametrize(
    "field, value",
    [("numOutputs", 5), ("width", 100), ("prompt", ""), ("prompt", " "), ("height", 2056), ("seed", 2**32)],
)
def test_out_of_range(field: str, value) -> None:
    with pytest.raises(ValidationError) as info:
        GenerateImageRequest.model_validate({"modelId": "tiny-sd", "prompt": "p", field: value})
    assert info.value.errors()[0]["loc"] == (field,)
