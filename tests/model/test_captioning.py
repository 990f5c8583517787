"""Automatic captions of training images: a tiny BLIP (random weights, built here) captions the images that have no
caption, greedily, and each caption trains with the trigger word woven in."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from events.training import TrainingRequestedData
from infra.settings import Settings
from tests.support import training_request
from tests.tiny_captioner import CAPTION_WORDS, build_tiny_blip
from workers.job_errors import CaptioningModelUnavailable
from workers.trainer import captioning
from workers.trainer.captioning import captioner_for, training_prompts


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BLIP image-to-text model and its processor, saved as an operator would point to them."""
    return build_tiny_blip(tmp_path_factory.mktemp("tiny-blip"))


def _images(count: int) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray((rng.random((40, 48, 3)) * 255).astype("uint8")) for _ in range(count)]


def _request(captions: list[str | None], *, auto: bool = True) -> TrainingRequestedData:
    base = training_request("trn_captions", "mod_captions")
    keys = [f"models/mod_captions/data/dat_{index}/{'0' * 64}.png" for index in range(len(captions))]
    parameters = base.parameters.model_copy(update={"autoCaption": auto, "conceptPrompt": "a photo of sks"})
    return base.model_copy(update={"dataKeys": keys, "captions": captions, "parameters": parameters})


def test_missing_captions_are_filled_by_the_captioning_model(tiny_blip: Path) -> None:
    settings = Settings(captioning_model=str(tiny_blip), torch_device="cpu")
    data = _request(["sks, a red cat", None, None])
    # The trainer may pass a subset of the keys, in its own order.
    keys = [data.dataKeys[2], data.dataKeys[0], data.dataKeys[1]]
    images = _images(3)

    first = training_prompts(data, keys, images, settings)

    assert len(first.prompts) == 3
    assert first.prompts[1] == "sks, a red cat"  # given: kept as it is
    assert set(first.automatic) == {data.dataKeys[1], data.dataKeys[2]}  # only the missing ones
    for index, key in ((0, data.dataKeys[2]), (2, data.dataKeys[1])):
        caption = first.automatic[key]
        assert caption and all(word in CAPTION_WORDS for word in caption.split())
        assert first.prompts[index] == f"sks, {caption}"  # woven: the trigger word leads
    # Greedy decoding: the same images get the same captions, from the one captioner this process keeps.
    assert training_prompts(data, keys, images, settings) == first
    assert captioner_for(settings) is captioner_for(settings)


def test_without_auto_caption_missing_captions_train_on_the_concept_prompt(tiny_blip: Path) -> None:
    settings = Settings(captioning_model=str(tiny_blip), torch_device="cpu")
    data = _request([None, "sks, a dog"], auto=False)

    prompts = training_prompts(data, data.dataKeys, _images(2), settings)

    assert prompts.prompts == ["a photo of sks", "sks, a dog"]
    assert prompts.automatic == {}


def test_auto_caption_without_a_model_warns_once_and_trains_on_the_concept_prompt(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(captioning, "_warned_unconfigured", False)
    data = _request([None, None])
    with caplog.at_level(logging.WARNING, logger=captioning.__name__):
        for _ in range(2):
            prompts = training_prompts(data, data.dataKeys, _images(2), Settings(captioning_model=None))
            assert prompts.prompts == ["a photo of sks", "a photo of sks"]
            assert prompts.automatic == {}
    assert len([r for r in caplog.records if "captioning model" in r.getMessage()]) == 1


def test_a_captioning_model_that_cannot_be_loaded_is_a_job_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    settings = Settings(captioning_model=str(tmp_path), torch_device="cpu")
    with pytest.raises(CaptioningModelUnavailable, match="cannot be loaded"):
        training_prompts(_request([None]), _request([None]).dataKeys, _images(1), settings)
