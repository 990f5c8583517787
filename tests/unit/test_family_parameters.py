"""Each family's training parameters (seed 003's documented defaults and limits), its model types, its image sides,
and the captions a training's images train on."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.usecases.training_params import (
    FLUX,
    SD15,
    SDXL,
    BaseDefaults,
    ParameterError,
    check_family_parameters,
    resolve_parameters,
)
from events.usecases.trainings import image_captions
from functions.api.errors import ApiError
from functions.api.schemas.models import TrainingParametersIn
from functions.api.services.generation import check_side
from functions.api.services.models import check_model_type, supported_types
from functions.api.services.training_data import caption_of_file, is_caption_file, pair_captions
from infra.base_models import BUILTIN_MODELS, TINY_FLUX, TINY_SD, TINY_SDXL


def resolve(family: str, images: int = 4, captioning: bool = False, **parameters: Any):
    """The parameters a training of `images` images takes from a Scenario-style `parameters` body."""
    applied = TrainingParametersIn.model_validate(parameters).applied() if parameters else None
    base = BaseDefaults(resolution=64, sample_steps=10, family=family, captioning_available=captioning)
    return resolve_parameters(image_count=images, trigger_word="TOK", base=base, request_parameters=applied)


@pytest.mark.parametrize(
    ("family", "steps", "rank", "rate", "text_rate"),
    [(SD15, 300, 16, 5e-6, 0.0), (SDXL, 700, 64, 5e-6, 5e-5), (FLUX, 400, 16, 1e-4, 0.0)],
)
def test_each_family_takes_seed_003s_defaults(family, steps, rank, rate, text_rate) -> None:
    # Any explicit parameter selects the Scenario-style defaults (here the seed, which changes none of them).
    params = resolve(family, images=4, seed=7)
    assert (params.maxTrainSteps, params.rank, params.learningRate) == (steps, rank, rate)
    assert params.learningRateTextEncoder == text_rate and params.numTextTrainSteps == 0
    assert params.aspectRatioBuckets is True and params.autoCaption is False


def test_the_presets_apply_to_every_family_and_flux_caps_their_steps() -> None:
    for family in (SD15, SDXL, FLUX):
        base = BaseDefaults(resolution=64, sample_steps=10, family=family)
        params = resolve_parameters(image_count=3, trigger_word="TOK", base=base, speed="fast")
        assert (params.rank, params.learningRate, params.maxTrainSteps) == (8, 2e-4, 120)
    many = BaseDefaults(resolution=64, sample_steps=10, family=FLUX)
    capped = resolve_parameters(image_count=200, trigger_word="TOK", base=many, strength=10, speed="high_quality")
    assert capped.maxTrainSteps == 10_000
    assert resolve(FLUX, images=150, seed=1).maxTrainSteps == 10_000, "150 x 100 is over FLUX's cap"


def test_sdxl_steps_are_the_text_and_unet_steps_summed() -> None:
    params = resolve(SDXL, numTextTrainSteps=30, numUNetTrainSteps=90)
    assert (params.maxTrainSteps, params.numTextTrainSteps, params.learningRateTextEncoder) == (120, 30, 5e-5)
    unet_only = resolve(SDXL, numUNetTrainSteps=50)
    assert (unet_only.maxTrainSteps, unet_only.numTextTrainSteps) == (50, 0)
    assert resolve(SDXL, maxTrainSteps=120, numTextTrainSteps=30, numUNetTrainSteps=90).maxTrainSteps == 120
    with pytest.raises(ParameterError, match="numTextTrainSteps \\+ numUNetTrainSteps") as info:
        resolve(SDXL, maxTrainSteps=100, numTextTrainSteps=30, numUNetTrainSteps=90)
    assert info.value.field == "maxTrainSteps"
    with pytest.raises(ParameterError, match="learningRateTextEncoder"):
        resolve(SDXL, numTextTrainSteps=10, numUNetTrainSteps=10, learningRateTextEncoder=0)


def test_sdxl_takes_the_legacy_ratio_and_learning_rate_unet() -> None:
    params = resolve(SDXL, maxTrainSteps=100, textEncoderTrainingRatio=0.2, learningRateUnet=3e-5)
    assert (params.numTextTrainSteps, params.learningRate) == (20, 3e-5)


def test_flux_ranks_are_2_to_64_and_steps_at_most_10000() -> None:
    assert resolve(FLUX, rank=2).rank == 2 and resolve(FLUX, rank=64).rank == 64
    for rank in (1, 65):
        with pytest.raises(ParameterError, match="ranks are 2 to 64") as info:
            resolve(FLUX, rank=rank)
        assert info.value.field == "rank"
    assert resolve(SDXL, rank=128).rank == 128, "SDXL keeps the general range"
    with pytest.raises(ParameterError, match="at most 10000") as info:
        resolve(FLUX, maxTrainSteps=10_001)
    assert info.value.field == "maxTrainSteps"
    assert resolve(SDXL, maxTrainSteps=10_001).maxTrainSteps == 10_001


def test_flux_trains_at_multiples_of_16_pixels() -> None:
    # FLUX packs 2x2 latents of an 8x VAE: 72 px would make an odd latent side the trainer cannot pack.
    assert resolve(FLUX, resolution=80).resolution == 80
    with pytest.raises(ParameterError, match="multiples of 16") as info:
        resolve(FLUX, resolution=72)
    assert info.value.field == "resolution"
    assert resolve(SDXL, resolution=72).resolution == 72
    with pytest.raises(ParameterError):
        check_family_parameters({"resolution": 520}, FLUX)


def test_stored_parameters_are_checked_against_the_family_when_set() -> None:
    check_family_parameters({"rank": 64, "maxTrainSteps": 10_000, "seed": 3}, FLUX)
    check_family_parameters({"rank": 128, "maxTrainSteps": 40_000}, SDXL)
    with pytest.raises(ParameterError) as info:
        check_family_parameters({"rank": 100}, FLUX)
    assert info.value.field == "rank"


def test_flux_text_encoder_rate_is_0_or_within_its_range() -> None:
    assert resolve(FLUX, learningRateTextEncoder=1e-5).learningRateTextEncoder == 1e-5
    with pytest.raises(ParameterError, match="learningRateTextEncoder"):
        resolve(FLUX, learningRateTextEncoder=5e-3)


def test_flux_repeats_and_epochs_make_the_steps() -> None:
    # nbEpochs x ceil(images x nbRepeats / batchSize): each epoch sees every image nbRepeats times.
    params = resolve(FLUX, images=5, nbEpochs=3, nbRepeats=4, batchSize=3)
    assert (params.maxTrainSteps, params.nbEpochs, params.nbRepeats, params.batchSize) == (21, 3, 4, 3)
    assert resolve(FLUX, images=5, nbRepeats=2).maxTrainSteps == 4 * 10, "the default 4 epochs"
    assert resolve(FLUX, images=5, nbEpochs=2, maxTrainSteps=7).maxTrainSteps == 7, "given steps win"
    assert resolve(SD15, images=5, nbEpochs=2, nbRepeats=3).maxTrainSteps == 375, "SD 1.5 as before"


def test_flux_options_pass_through_and_other_families_ignore_them() -> None:
    flux = resolve(FLUX, optimizeFor="likeness", samplePrompts=["TOK on a beach"], aspectRatioBuckets=False)
    assert flux.optimizeFor == "likeness" and flux.samplePrompts == ["TOK on a beach"]
    assert flux.aspectRatioBuckets is False
    assert resolve(SDXL, optimizeFor="all").optimizeFor is None
    # SD-only parameters on FLUX are accepted and ignored, as the ignored Scenario-style parameters are.
    ignored = resolve(FLUX, classPrompt="a dog", priorLossWeight=0.5, numTextTrainSteps=3)
    assert (ignored.classPrompt, ignored.numClassImages, ignored.numTextTrainSteps) == (None, 0, 0)
    assert resolve(SD15, numTextTrainSteps=3, numUNetTrainSteps=5).numTextTrainSteps == 0
    with pytest.raises(ValueError):
        TrainingParametersIn.model_validate({"optimizeFor": "faces"})


def test_auto_caption_follows_the_deployment_unless_asked() -> None:
    assert resolve(SDXL, captioning=True, seed=1).autoCaption is True
    assert resolve(SDXL, captioning=True, autoCaption=False).autoCaption is False
    assert resolve(SD15, captioning=False, seed=1).autoCaption is False
    with pytest.raises(ParameterError, match="no captioning model") as info:
        resolve(SD15, captioning=False, autoCaption=True)
    assert info.value.field == "autoCaption"


def test_numtext_and_optimizefor_are_kept_on_the_model() -> None:
    applied = TrainingParametersIn.model_validate(
        {"numTextTrainSteps": 3, "numUNetTrainSteps": 5, "optimizeFor": "all", "wandbKey": "secret"}
    ).applied()
    assert applied == {"numTextTrainSteps": 3, "numUNetTrainSteps": 5, "optimizeFor": "all"}


def context_with(*specs) -> Any:
    return SimpleNamespace(base_models={spec.name: spec for spec in specs})


def test_types_are_checked_against_the_bases_family() -> None:
    context = context_with(*BUILTIN_MODELS.values())
    assert check_model_type(context, "flux.1-composition", TINY_FLUX) == "flux.1-composition"
    assert check_model_type(context, "sd-xl-lora", TINY_SDXL) == "sd-xl-lora"
    with pytest.raises(ApiError) as info:
        check_model_type(context, "flux.1-lora", TINY_SDXL)
    assert (info.value.status, info.value.code, info.value.field) == (422, "incompatible_model_type", "type")
    with pytest.raises(ApiError) as info:
        check_model_type(context, "flux.1-kontext-lora", TINY_FLUX)
    assert info.value.code == "unsupported_model_type" and "flux.1-lora" in info.value.message
    # A family without a base here is not supported at all.
    sd_only = context_with(TINY_SD)
    assert supported_types(sd_only) == ["sd-1_5-lora", "sd-1_5-composition"]
    with pytest.raises(ApiError) as info:
        check_model_type(sd_only, "sd-xl-lora", TINY_SD)
    assert info.value.code == "unsupported_model_type"


def test_sides_are_multiples_of_the_bases_multiple() -> None:
    check_side(TINY_FLUX, "width", 96)
    check_side(TINY_SDXL, "width", 72)
    with pytest.raises(ApiError) as info:
        check_side(TINY_FLUX, "height", 72)
    assert (info.value.status, info.value.field) == (422, "height") and "multiple of 16" in info.value.message
    with pytest.raises(ApiError, match="at most 1536"):
        check_side(TINY_SD, "width", 2048)


def test_caption_sidecars_pair_with_their_images() -> None:
    assert is_caption_file("cat1.txt") and is_caption_file("CAT1.TXT") and not is_caption_file("cat1.png")
    assert not is_caption_file(None)
    sidecar = ("images[1]", "cat1.txt", "\ufeffa cat on a sofa\n".encode())
    assert caption_of_file(*sidecar[1:], sidecar[0]) == "a cat on a sofa"
    assert pair_captions(["cat1.png", "dog.jpg", None], [sidecar]) == ["a cat on a sofa", None, None]
    with pytest.raises(ApiError) as info:
        pair_captions(["dog.jpg"], [sidecar])
    assert (info.value.code, info.value.field) == ("caption_without_image", "images[1]")
    with pytest.raises(ApiError) as info:
        caption_of_file("cat1.txt", b"\xff\xfe\x00bad", "images[2]")
    assert info.value.code == "caption_not_text" and "cat1.txt" in info.value.message
    with pytest.raises(ApiError) as info:
        caption_of_file("cat1.txt", b"x" * 9000, "images[2]")
    assert info.value.code == "caption_too_large" and info.value.status == 422


def image(description: str | None, data_id: str = "dat_1") -> TrainingImageRecord:
    return TrainingImageRecord(
        modelId="mod_1",
        dataId=data_id,
        tenantId="ten_1",
        status=UploadStatus.READY,
        key=f"models/mod_1/data/{data_id}.png",
        description=description,
    )


def test_each_described_image_trains_on_its_caption_with_the_trigger_word() -> None:
    items = [image("a cat on a sofa", "dat_1"), image(None, "dat_2"), image("TOK asleep", "dat_3")]
    assert image_captions(items, "TOK", "TOK") == ["TOK, a cat on a sofa", None, "TOK asleep"]
    assert image_captions([image(None)], "TOK", "TOK") is None, "no caption at all: the concept prompt"
    assert image_captions([image("x" * 1000)], "TOK", "TOK") == [("TOK, " + "x" * 1000)[:1000]]


def test_a_set_that_places_its_trigger_word_trains_its_other_captions_as_written() -> None:
    """Regularisation pictures: once one caption says where the word goes, the others are the base's own words."""
    items = [image("a red [trigger]", "dat_1"), image("a red circle", "dat_2"), image(None, "dat_3")]
    assert image_captions(items, "TOK", "TOK") == ["a red TOK", "a red circle", None]
    assert image_captions([image("a red circle")], "TOK", "TOK") == ["TOK, a red circle"], "no placeholder: woven in"
