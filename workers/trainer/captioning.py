"""What each training image is trained on: the caption the request gave it, or, where it has none and the training
asks for it, a caption from the operator's captioning model, with the trigger word woven in.

The captioning model is an image-to-text model in transformers' layout (BLIP and the like), in a local folder or
under an s3:// prefix (`settings.captioning_model`); it is loaded once per process, on the worker's device, from
local files only (nothing comes from a hub at run time), and kept for every later training.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from events.captions import training_prompt
from events.captions_marker import AutomaticCaptions
from events.envelope import utcnow
from events.storage_keys import training_captions_key
from events.training import TrainingRequestedData
from infra.settings import Settings
from infra.storage import ArtifactStore
from workers.base_models.loader import pick_device
from workers.job_errors import CaptioningModelUnavailable
from workers.module_construction import MODULE_CONSTRUCTION

log = logging.getLogger(__name__)

# Captions are short descriptions; greedy decoding so the same image always gets the same caption.
MAX_CAPTION_TOKENS = 40


@dataclass(frozen=True)
class TrainingPrompts:
    """The prompt of each image (aligned with the keys given), and the captions made automatically now, by key."""

    prompts: list[str]
    automatic: dict[str, str] = field(default_factory=dict)


class Captioner:
    """An image-to-text model and its processor, loaded from a local folder; `caption` is deterministic."""

    def __init__(self, folder: Path, device: torch.device, dtype: torch.dtype) -> None:
        # Imported here: the generator never captions, and transformers' auto classes are slow to import.
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device
        self.dtype = dtype
        with MODULE_CONSTRUCTION:
            self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self.model = model.to(device).eval()

    @torch.inference_mode()
    def caption(self, image: Image.Image) -> str:
        """The model's caption of one image (empty when it says nothing)."""
        inputs = self.processor(images=image.convert("RGB"), return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        tokens = self.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=MAX_CAPTION_TOKENS)
        return str(self.processor.batch_decode(tokens, skip_special_tokens=True)[0]).strip()


_captioners: dict[str, Captioner] = {}
_captioners_lock = threading.Lock()
_warned_unconfigured = False


def _captioning_folder(settings: Settings, source: str) -> Path:
    if source.startswith("s3://"):
        from workers.base_models.download import download_prefix

        return download_prefix(settings, source, settings.model_cache_dir)
    return Path(source).expanduser()


def captioner_for(settings: Settings) -> Captioner:
    """The process's captioner for `settings.captioning_model` (loaded at the first call, then kept);
    CaptioningModelUnavailable when it cannot be found or loaded."""
    source = settings.captioning_model
    assert source is not None
    with _captioners_lock:
        captioner = _captioners.get(source)
        if captioner is None:
            device, dtype = pick_device(settings.torch_device)
            try:
                captioner = Captioner(_captioning_folder(settings, source), device, dtype)
            except CaptioningModelUnavailable:
                raise
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise CaptioningModelUnavailable(f"captioning model {source!r} cannot be loaded: {exc}") from exc
            _captioners[source] = captioner
        return captioner


def _warn_unconfigured_once() -> None:
    global _warned_unconfigured
    if not _warned_unconfigured:
        _warned_unconfigured = True
        log.warning(
            "a training asks for automatic captions, but no captioning model is configured "
            "(LF_CAPTIONING_MODEL): its images without a description train on the concept prompt"
        )


def training_prompts(
    data: TrainingRequestedData, keys: Sequence[str], images: Sequence[Image.Image], settings: Settings
) -> TrainingPrompts:
    """The prompts of the images at `keys` (a subset of `data.dataKeys`, aligned with `images`); runs in the model
    thread, since captioning runs a model."""
    given = dict(zip(data.dataKeys, data.captions or [None] * len(data.dataKeys), strict=True))
    parameters = data.parameters
    missing = [index for index, key in enumerate(keys) if not (given.get(key) or "").strip()]
    automatic: dict[str, str] = {}
    if parameters.autoCaption and missing:
        if settings.captioning_model is None:
            _warn_unconfigured_once()
        else:
            captioner = captioner_for(settings)
            for index in missing:
                caption = captioner.caption(images[index])
                if caption:
                    automatic[keys[index]] = caption
    prompts = []
    for key in keys:
        if key in automatic:
            prompts.append(training_prompt(automatic[key], data.triggerWord, parameters.conceptPrompt))
        else:
            # A given caption is already the final prompt (the API wove the trigger word in).
            prompts.append(given.get(key) or parameters.conceptPrompt)
    return TrainingPrompts(prompts=prompts, automatic=automatic)


async def write_automatic_captions(store: ArtifactStore, training_id: str, captions: dict[str, str]) -> None:
    """Record the captions made automatically (`trainings/{id}/captions.json`), for the API to show on each training
    image; nothing is written when there are none."""
    if not captions:
        return
    marker = AutomaticCaptions(trainingId=training_id, captions=captions, createdAt=utcnow())
    await store.put_model(training_captions_key(training_id), marker)
