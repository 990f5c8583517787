"""Turning a generation request into encoded images, with base pipelines loaded once and kept."""

from __future__ import annotations

import contextlib
import inspect
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting, DiffusionPipeline
from PIL import Image, ImageChops, ImageFilter

from events.generation import GenerationMode, GenerationRequestedData, OutputFormat
from infra.base_models import BaseModelSpec
from infra.lora_files.errors import AdapterFileError
from infra.repositories.base_models import RegisteredBaseModelReader
from infra.settings import Settings
from workers.base_models.loader import BaseModelUnavailable, load_pipeline
from workers.generator.adapters import AdapterCache, AdapterFetcher
from workers.generator.image_metadata import (
    ImageParameters,
    LoraUse,
    exif_with_user_comment,
    infotext,
    lora_name,
    lora_short_hash,
    output_seed,
    png_info,
    sampler_name,
)
from workers.job_errors import GenerationCanceled, InvalidInput

CONTENT_TYPES = {OutputFormat.PNG: "image/png", OutputFormat.JPEG: "image/jpeg"}
EXTENSIONS = {OutputFormat.PNG: "png", OutputFormat.JPEG: "jpeg"}
# Pipelines for the other modes share the base pipeline's modules (`from_pipe`), so they cost no memory and
# see the same loaded adapters.
_VARIANTS = {
    GenerationMode.IMAGE_TO_IMAGE: AutoPipelineForImage2Image,
    GenerationMode.INPAINTING: AutoPipelineForInpainting,
}


@dataclass(frozen=True)
class ModifyInputs:
    """The decoded inputs of an image-to-image or inpainting job, at the request's size."""

    image: Image.Image
    mask: Image.Image | None  # binary "L": 255 = repaint


def decode_inputs(request: GenerationRequestedData, image: bytes, mask: bytes | None) -> ModifyInputs:
    """Decode a modify job's input bytes, resized to the request's size if a producer sent another size."""
    size = (request.width, request.height)
    try:
        with Image.open(io.BytesIO(image)) as source:
            picture = source.convert("RGB")
        binary = None
        if mask is not None:
            with Image.open(io.BytesIO(mask)) as source:
                binary = source.convert("L").point(lambda v: 255 if v >= 128 else 0)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidInput(f"input image is not a readable image: {exc}") from exc
    if picture.size != size:
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    if binary is not None and binary.size != size:
        binary = binary.resize(size, Image.Resampling.NEAREST)
    return ModifyInputs(image=picture, mask=binary)


def keep_unmasked(original: Image.Image, generated: Image.Image, mask: Image.Image) -> Image.Image:
    """The generated image where the mask is white, the original's exact pixels where it is black.

    The VAE cannot reproduce pixels exactly, so the unmasked area is pasted back rather than trusted to the
    model. The seam is feathered inwards only (a blur clipped by the mask), so black stays untouched."""
    radius = max(1, min(mask.size) // 64)
    alpha = ImageChops.darker(mask, mask.filter(ImageFilter.GaussianBlur(radius)))
    return Image.composite(generated.convert("RGB"), original, alpha)


@dataclass(frozen=True)
class GeneratedImages:
    """Encoded outputs of one job and where the time went."""

    images: list[bytes]
    seeds: list[int]  # output i's own seed (`output_seed`)
    parameters: list[str]  # output i's A1111 infotext, as its file carries it
    sampler: str  # A1111's name of the scheduler that ran
    content_type: str
    extension: str
    load_ms: float
    adapter_load_ms: float
    adapter_switch_ms: float
    compute_ms: float
    encode_ms: float


def encode_image(image: Image.Image, fmt: OutputFormat, parameters: str | None = None) -> bytes:
    """Encode deterministically: same pixels and parameters, same bytes (no timestamps or random metadata).
    `parameters`, the image's A1111 infotext, goes in a PNG `parameters` text chunk or the JPEG's EXIF
    UserComment (workers/generator/image_metadata.py)."""
    buffer = io.BytesIO()
    if fmt is OutputFormat.JPEG:
        extra = {} if parameters is None else {"exif": exif_with_user_comment(parameters)}
        image.convert("RGB").save(buffer, format="JPEG", quality=92, **extra)
    else:
        image.save(buffer, format="PNG", pnginfo=None if parameters is None else png_info(parameters))
    return buffer.getvalue()


class PipelineCache:
    """Base pipelines, loaded on first use and kept for the worker's life (setup once, predict many),
    each with the cache of LoRA adapters loaded into it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pipelines: dict[str, DiffusionPipeline] = {}
        self._adapters: dict[str, AdapterCache] = {}
        self._specs: dict[str, BaseModelSpec] = {}  # what each loaded pipeline was loaded from
        # A1111 short hashes of the adapter files fetched, by key, for the images' infotext; an adapter's key
        # names one immutable file (a training's or an import's), so a hash stays true while the key is loaded.
        self.adapter_hashes: dict[str, str] = {}
        self._lock = threading.Lock()
        # The base models it may be asked for, those an operator registered at run time included.
        self.base_models = RegisteredBaseModelReader(settings)

    def spec(self, name: str) -> BaseModelSpec:
        """The registry entry of a base model."""
        spec = self.base_models.spec(name)
        if spec is None:
            raise BaseModelUnavailable(f"unknown base model {name!r}")
        return spec

    def get(self, name: str) -> tuple[DiffusionPipeline, float]:
        """The pipeline and the milliseconds spent loading it now (0 when it was already loaded)."""
        spec = self.spec(name)
        with self._lock:
            if name in self._pipelines and self._specs.get(name) == spec:
                return self._pipelines[name], 0.0
            # First use, or an operator re-registered the name with other weights: (re)load, with fresh variants
            # and adapter cache (adapters loaded into the old weights are not this model's).
            for key in [k for k in self._pipelines if k == name or k.startswith(f"{name}\0")]:
                del self._pipelines[key]
            started = time.perf_counter()
            pipeline = load_pipeline(spec, self.settings)
            self._pipelines[name] = pipeline
            self._specs[name] = spec
            self._adapters[name] = AdapterCache(pipeline, self.settings.adapter_cache_bytes)
            return pipeline, (time.perf_counter() - started) * 1000

    def hashing(self, fetch: AdapterFetcher) -> AdapterFetcher:
        """`fetch`, keeping the A1111 short hash of every adapter file it reads (for the images' infotext)."""

        def fetch_and_hash(key: str) -> bytes:
            data = fetch(key)
            with contextlib.suppress(AdapterFileError):  # no safetensors file: the adapter cache says so
                self.adapter_hashes[key] = lora_short_hash(data)
            return data

        return fetch_and_hash

    def forget_unloaded_hashes(self) -> None:
        """Drop the hashes of adapters no pipeline holds any more (an evicted one is fetched, and hashed, again)."""
        loaded = {key for adapters in self._adapters.values() for key in adapters.loaded}
        for key in [key for key in self.adapter_hashes if key not in loaded]:
            del self.adapter_hashes[key]

    def adapters(self, name: str) -> AdapterCache:
        """The adapter cache of a loaded base pipeline."""
        return self._adapters[name]

    def for_mode(self, name: str, mode: GenerationMode) -> DiffusionPipeline:
        """The loaded base pipeline, or its image-to-image or inpainting sibling sharing its modules."""
        pipeline, _ = self.get(name)
        if mode is GenerationMode.TEXT_TO_IMAGE:
            return pipeline
        with self._lock:
            key = f"{name}\0{mode.value}"
            if key not in self._pipelines:
                variant = _VARIANTS[mode].from_pipe(pipeline)
                variant.set_progress_bar_config(disable=True)
                self._pipelines[key] = variant
            return self._pipelines[key]


StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


def stop_when_set(cancel: threading.Event) -> StepCallback:
    """A diffusers `callback_on_step_end` that ends the run between two denoising steps once `cancel` is set,
    raising `GenerationCanceled` with the number of steps done (diffusers calls it after step `index`)."""

    def on_step_end(pipeline: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if cancel.is_set():
            raise GenerationCanceled(index + 1)
        return tensors

    return on_step_end


def generate(
    cache: PipelineCache,
    request: GenerationRequestedData,
    fetch: AdapterFetcher,
    inputs: ModifyInputs | None = None,
    cancel: threading.Event | None = None,
) -> GeneratedImages:
    """Run one request with its adapters active; blocking, so callers run it off the event loop, one at a
    time per worker (activating adapters mutates the shared pipeline). `fetch` reads an adapter's bytes;
    `inputs` are the decoded images of an image-to-image or inpainting request. Once `cancel` is set the
    run stops at the next step boundary with `GenerationCanceled`."""
    cancel = cancel or threading.Event()
    check_size(cache.spec(request.baseModel), request)
    pipeline, load_ms = cache.get(request.baseModel)
    activation = cache.adapters(request.baseModel).activate(request.adapters, cache.hashing(fetch))
    cache.forget_unloaded_hashes()
    if cancel.is_set():
        raise GenerationCanceled(0)
    started = time.perf_counter()
    on_step_end = stop_when_set(cancel)
    used = pipeline
    if request.mode is GenerationMode.TEXT_TO_IMAGE:
        images = _run(pipeline, request, on_step_end, width=request.width, height=request.height)
    else:
        if inputs is None:
            raise InvalidInput(f"a {request.mode.value} job needs its input image")
        used = cache.for_mode(request.baseModel, request.mode)
        images = _modify(used, request, inputs, on_step_end)
    computed = time.perf_counter()
    seeds = [output_seed(request.seed, index) for index in range(len(images))]
    texts = [infotext(image_parameters(used, cache.spec(request.baseModel), request, seed, cache)) for seed in seeds]
    encoded = [encode_image(image, request.outputFormat, text) for image, text in zip(images, texts, strict=True)]
    return GeneratedImages(
        images=encoded,
        seeds=seeds,
        parameters=texts,
        sampler=sampler_name(used.scheduler)[0],
        content_type=CONTENT_TYPES[request.outputFormat],
        extension=EXTENSIONS[request.outputFormat],
        load_ms=load_ms,
        adapter_load_ms=activation.load_ms,
        adapter_switch_ms=activation.switch_ms,
        compute_ms=(computed - started) * 1000,
        encode_ms=(time.perf_counter() - computed) * 1000,
    )


def image_parameters(
    pipeline: DiffusionPipeline, spec: BaseModelSpec, request: GenerationRequestedData, seed: int, cache: PipelineCache
) -> ImageParameters:
    """What one output's infotext says: the request as `pipeline` ran it, with this output's `seed`."""
    sampler, schedule = sampler_name(pipeline.scheduler)
    family = family_arguments(pipeline, request)
    flux = "true_cfg_scale" in inspect.signature(pipeline.__call__).parameters
    if flux:
        # FLUX.1's guidance is the distilled one; true classifier-free guidance only with a negative prompt.
        cfg, distilled = float(family.get("true_cfg_scale", 1.0)), request.guidanceScale  # type: ignore[arg-type]
    else:
        cfg, distilled = request.guidanceScale, None
    negative = family.get("negative_prompt")
    return ImageParameters(
        prompt=request.prompt,
        negative_prompt=negative if isinstance(negative, str) and negative.strip() else None,
        steps=request.numInferenceSteps,
        sampler=sampler,
        schedule_type=schedule,
        cfg_scale=cfg,
        distilled_cfg_scale=distilled,
        seed=seed,
        width=request.width,
        height=request.height,
        model=request.baseModel,
        model_hash=spec.sha256[:10] if spec.sha256 else None,
        denoising_strength=None if request.mode is GenerationMode.TEXT_TO_IMAGE else request.effective_strength,
        loras=[
            LoraUse(name=lora_name(a.modelId, a.epoch), weight=a.scale, short_hash=cache.adapter_hashes.get(a.key))
            for a in request.adapters
        ],
    )


def check_size(spec: BaseModelSpec, request: GenerationRequestedData) -> None:
    """Refuse a size off the base model's grid (FLUX packs 2x2 latents: multiples of 16) with `InvalidInput`: the
    API validates it, but a producer writing to Kafka directly may not."""
    multiple = spec.size_multiple
    if request.width % multiple or request.height % multiple:
        raise InvalidInput(
            f"{request.width}x{request.height} is off {spec.name}'s grid: sides must be multiples of {multiple}"
        )


# FLUX.1's T5 reads at most this many tokens (its tokenizer may say less, as tiny-flux's does).
MAX_T5_TOKENS = 512


def family_arguments(pipeline: DiffusionPipeline, request: GenerationRequestedData) -> dict[str, object]:
    """The request's guidance and negative prompt in the words of the pipeline's family.

    SD 1.5 and SDXL: classifier-free guidance at `guidanceScale`, with the negative prompt as its unconditional
    side. FLUX.1 (a pipeline with a T5 encoder and `true_cfg_scale`): `guidanceScale` is the distilled guidance
    the transformer embeds (FLUX.1-dev; schnell ignores it); a negative prompt turns on true classifier-free
    guidance at the same scale, two transformer passes per step, and does nothing at a scale of 1 or less."""
    parameters = inspect.signature(pipeline.__call__).parameters
    arguments: dict[str, object] = {"guidance_scale": request.guidanceScale}
    if "true_cfg_scale" not in parameters:
        return arguments | {"negative_prompt": request.negativePrompt}
    negative = request.negativePrompt if request.negativePrompt and request.negativePrompt.strip() else None
    if negative is not None and request.guidanceScale > 1:
        arguments |= {"negative_prompt": negative, "true_cfg_scale": request.guidanceScale}
    if "max_sequence_length" in parameters:
        tokens = getattr(getattr(pipeline, "tokenizer_2", None), "model_max_length", MAX_T5_TOKENS)
        arguments["max_sequence_length"] = min(int(tokens), MAX_T5_TOKENS)
    return arguments


def _run(
    pipeline: DiffusionPipeline, request: GenerationRequestedData, on_step_end: StepCallback, **extra: object
) -> list[Image.Image]:
    # A CPU generator makes the noise identical on every device, so a seed means the same thing anywhere. One
    # generator per output, seeded `seed + i`: output i is then the sole output of a request with that seed, the
    # seed its infotext names (with one output, the same noise as one generator seeded `seed`).
    count = request.numOutputs
    generator = [torch.Generator("cpu").manual_seed(output_seed(request.seed, i)) for i in range(count)]
    family = family_arguments(pipeline, request)
    prompts: dict[str, object] = {"prompt": request.prompt}
    if "negative_prompt" in family:
        prompts["negative_prompt"] = family.pop("negative_prompt")
    if "image" in extra and count > 1:
        # One input image per output: diffusers deprecates repeating a single image to fill the batch.
        prompts = {k: [v] * count if v is not None else None for k, v in prompts.items()}
        extra = {k: [v] * count if k in ("image", "mask_image") else v for k, v in extra.items()}
        count = 1
    with torch.inference_mode():
        result = pipeline(
            **prompts,
            num_inference_steps=request.numInferenceSteps,
            num_images_per_prompt=count,
            generator=generator,
            callback_on_step_end=on_step_end,
            **family,
            **extra,
        )
    return list(result.images)


def _modify(
    pipeline: DiffusionPipeline, request: GenerationRequestedData, inputs: ModifyInputs, on_step_end: StepCallback
) -> list[Image.Image]:
    strength = request.effective_strength
    if int(request.numInferenceSteps * strength) < 1:
        # Diffusers runs int(steps x strength) denoising steps: none means the input itself, unchanged.
        return [inputs.image.copy() for _ in range(request.numOutputs)]
    extra: dict[str, object] = {"image": inputs.image, "strength": strength}
    if inputs.mask is not None:
        extra["mask_image"] = inputs.mask
    if "width" in inspect.signature(pipeline.__call__).parameters:
        # The request's size wherever the pipeline takes one: FLUX's image-to-image otherwise makes 1024 px
        # whatever its input (SD's and SDXL's image-to-image take the input's size and have no such argument).
        extra |= {"width": request.width, "height": request.height}
    generated = _run(pipeline, request, on_step_end, **extra)
    if inputs.mask is None:
        return generated
    return [keep_unmasked(inputs.image, image.resize(inputs.image.size), inputs.mask) for image in generated]
