"""Turning a generation request into encoded images, with base pipelines loaded once and kept."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from PIL import Image

from events.generation import GenerationRequestedData, OutputFormat
from infra.base_models import BaseModelSpec, base_model_registry
from infra.settings import Settings
from workers.base_models.loader import BaseModelUnavailable, load_pipeline
from workers.generator.adapters import AdapterCache, AdapterFetcher

CONTENT_TYPES = {OutputFormat.PNG: "image/png", OutputFormat.JPEG: "image/jpeg"}
EXTENSIONS = {OutputFormat.PNG: "png", OutputFormat.JPEG: "jpeg"}


@dataclass(frozen=True)
class GeneratedImages:
    """Encoded outputs of one job and where the time went."""

    images: list[bytes]
    content_type: str
    extension: str
    load_ms: float
    adapter_load_ms: float
    adapter_switch_ms: float
    compute_ms: float
    encode_ms: float


def encode_image(image: Image.Image, fmt: OutputFormat) -> bytes:
    """Encode deterministically: same pixels, same bytes (no timestamps or random metadata)."""
    buffer = io.BytesIO()
    if fmt is OutputFormat.JPEG:
        image.convert("RGB").save(buffer, format="JPEG", quality=92)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


class PipelineCache:
    """Base pipelines, loaded on first use and kept for the worker's life (setup once, predict many),
    each with the cache of LoRA adapters loaded into it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pipelines: dict[str, DiffusionPipeline] = {}
        self._adapters: dict[str, AdapterCache] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> BaseModelSpec:
        """The registry entry of a base model."""
        spec = base_model_registry(self.settings).get(name)
        if spec is None:
            raise BaseModelUnavailable(f"unknown base model {name!r}")
        return spec

    def get(self, name: str) -> tuple[DiffusionPipeline, float]:
        """The pipeline and the milliseconds spent loading it now (0 when it was already loaded)."""
        with self._lock:
            if name in self._pipelines:
                return self._pipelines[name], 0.0
            started = time.perf_counter()
            pipeline = load_pipeline(self.spec(name), self.settings)
            self._pipelines[name] = pipeline
            self._adapters[name] = AdapterCache(pipeline, self.settings.adapter_cache_bytes)
            return pipeline, (time.perf_counter() - started) * 1000

    def adapters(self, name: str) -> AdapterCache:
        """The adapter cache of a loaded base pipeline."""
        return self._adapters[name]


def generate(cache: PipelineCache, request: GenerationRequestedData, fetch: AdapterFetcher) -> GeneratedImages:
    """Run one request with its adapters active; blocking, so callers run it off the event loop, one at a
    time per worker (activating adapters mutates the shared pipeline). `fetch` reads an adapter's bytes."""
    pipeline, load_ms = cache.get(request.baseModel)
    activation = cache.adapters(request.baseModel).activate(request.adapters, fetch)
    started = time.perf_counter()
    # A CPU generator makes the noise identical on every device, so a seed means the same thing anywhere.
    generator = torch.Generator("cpu").manual_seed(request.seed)
    with torch.inference_mode():
        result = pipeline(
            prompt=request.prompt,
            negative_prompt=request.negativePrompt,
            width=request.width,
            height=request.height,
            guidance_scale=request.guidanceScale,
            num_inference_steps=request.numInferenceSteps,
            num_images_per_prompt=request.numOutputs,
            generator=generator,
        )
    computed = time.perf_counter()
    images = [encode_image(image, request.outputFormat) for image in result.images]
    return GeneratedImages(
        images=images,
        content_type=CONTENT_TYPES[request.outputFormat],
        extension=EXTENSIONS[request.outputFormat],
        load_ms=load_ms,
        adapter_load_ms=activation.load_ms,
        adapter_switch_ms=activation.switch_ms,
        compute_ms=(computed - started) * 1000,
        encode_ms=(time.perf_counter() - computed) * 1000,
    )
