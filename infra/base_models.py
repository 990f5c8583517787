"""Which base models exist and where their weights are: metadata only (the loader lives in workers/).

The API uses this to validate a request before it queues a job and to list the catalog
(`GET /v1/base-models`); workers use it to load the weights. No torch here: the API must not import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from infra.settings import BaseModelSource, Settings

BUILTIN_PREFIX = "builtin:"


ATTENTION_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
# tiny-sd's weights are random: its attention alone has too little say in the output for an adapter there
# to learn anything measurable, so its adapters also cover the transformer blocks' projections, the
# feed-forwards and the ResNet convolutions (measured: loss 1.06 -> 0.40 in 100 steps, vs 1.06 -> 1.06).
TINY_SD_TARGETS = (
    *ATTENTION_TARGETS,
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_in",
    "conv_out",
    "time_emb_proj",
)


class Family(StrEnum):
    """A base-model architecture, in the Scenario-style API's words: adapters, compositions and mixes stay within one,
    and each has its own trainer, its own LoRA layers and its own adapter key names."""

    SD15 = "sd-1_5"
    SDXL = "sd-xl"
    FLUX = "flux.1"


class Capability(StrEnum):
    """What a base model can be used for."""

    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINTING = "inpainting"
    TRAINING = "training"


# Every family generates in the three modes (diffusers derives the image-to-image and inpainting pipelines from the
# text-to-image one) and trains (workers/trainer/families/ has a trainer for each).
GENERATION_CAPABILITIES = (Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE, Capability.INPAINTING)
ALL_CAPABILITIES = (*GENERATION_CAPABILITIES, Capability.TRAINING)
SD15_CAPABILITIES = ALL_CAPABILITIES  # the name older code imports

# FLUX's transformer blocks: the attention projections of both streams (diffusers' FLUX LoRA script's default set).
FLUX_ATTENTION_TARGETS = ("to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out")
# The tiny FLUX's weights are random, as tiny-sd's: its adapters also cover the feed-forwards and the single
# blocks' projections, so a short training has a measurable say in the output.
TINY_FLUX_TARGETS = (
    *FLUX_ATTENTION_TARGETS,
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
    "proj_out",
)


@dataclass(frozen=True)
class BaseModelSpec:
    """A base model: its registry name, its family, where its weights are, and the defaults requests inherit."""

    name: str
    source: str  # "builtin:<name>", a local diffusers folder or s3:// prefix, or one .safetensors file (local or s3://)
    family: Family
    default_size: int
    max_side: int
    default_steps: int
    default_guidance: float = 7.5
    # UNet (or FLUX transformer) modules a LoRA adapts: the attention projections, as diffusers' LoRA scripts do.
    lora_targets: tuple[str, ...] = ATTENTION_TARGETS
    # Typical training speed (steps per second at the default size), for `estimatedCompletion` only.
    train_steps_per_second: float = 1.0
    capabilities: tuple[Capability, ...] = ALL_CAPABILITIES
    # A single-file checkpoint only: the diffusers folder (local or s3://) with its family's configuration (every
    # component's config and the tokenizers; no weights needed), and the file's sha256 when the operator gave one.
    config: str | None = None
    sha256: str | None = None
    # Image sides are multiples of this many pixels (the VAE's 8x, and FLUX's 2x2 latent packing: 16).
    size_multiple: int = 8

    @property
    def model_type(self) -> str:
        """The Scenario-style type of a LoRA model created on it (`sd-1_5-lora`, `sd-xl-lora`, `flux.1-lora`)."""
        return f"{self.family.value}-lora"

    @property
    def is_builtin(self) -> bool:
        """Whether the weights are made in-process rather than read from storage."""
        return self.source.startswith(BUILTIN_PREFIX)

    @property
    def is_single_file(self) -> bool:
        """Whether the weights are one `.safetensors` checkpoint (loaded with its family's configuration)."""
        return self.source.endswith(".safetensors")


TINY_SD = BaseModelSpec(
    name="tiny-sd",
    source=f"{BUILTIN_PREFIX}tiny-sd",
    family=Family.SD15,
    default_size=64,
    max_side=1536,
    default_steps=10,
    train_steps_per_second=8.0,
    lora_targets=TINY_SD_TARGETS,
)
TINY_SDXL = BaseModelSpec(
    name="tiny-sdxl",
    source=f"{BUILTIN_PREFIX}tiny-sdxl",
    family=Family.SDXL,
    default_size=64,
    max_side=1536,
    default_steps=10,
    default_guidance=5.0,
    train_steps_per_second=5.0,
    lora_targets=TINY_SD_TARGETS,
)
TINY_FLUX = BaseModelSpec(
    name="tiny-flux",
    source=f"{BUILTIN_PREFIX}tiny-flux",
    family=Family.FLUX,
    default_size=64,
    max_side=1536,
    default_steps=10,
    default_guidance=3.5,
    train_steps_per_second=8.0,
    lora_targets=TINY_FLUX_TARGETS,
    size_multiple=16,
)
# A tiny SD 1.5-family model actually trained (workers/base_models/tiny_shapes/): coloured shapes on plain
# backgrounds, so its pictures show what a prompt or an adapter did.
TINY_SHAPES = BaseModelSpec(
    name="tiny-shapes",
    source=f"{BUILTIN_PREFIX}tiny-shapes",
    family=Family.SD15,
    default_size=64,
    max_side=512,
    default_steps=20,
    train_steps_per_second=8.0,
    lora_targets=TINY_SD_TARGETS,
)
BUILTIN_MODELS = {spec.name: spec for spec in (TINY_SD, TINY_SDXL, TINY_FLUX, TINY_SHAPES)}

# Defaults for each family when an operator points a name at its weights.
FAMILY_DEFAULTS: dict[Family, dict[str, object]] = {
    Family.SD15: dict(default_size=512, max_side=1536, default_steps=30),
    Family.SDXL: dict(default_size=1024, max_side=2048, default_steps=30, default_guidance=5.0),
    Family.FLUX: dict(
        default_size=1024,
        max_side=2048,
        default_steps=28,
        default_guidance=3.5,
        lora_targets=FLUX_ATTENTION_TARGETS,
        size_multiple=16,
    ),
}


def family_of_name(name: str) -> Family:
    """The family a configured base model's name implies when its entry does not say (`sd-xl…`, `sdxl…`,
    `flux…`; anything else is SD 1.5, as before families were configurable)."""
    lowered = name.lower()
    if lowered.startswith(("sd-xl", "sdxl")):
        return Family.SDXL
    if lowered.startswith("flux"):
        return Family.FLUX
    return Family.SD15


def configured_spec(name: str, entry: str | BaseModelSource) -> BaseModelSpec:
    """The spec of a base model the operator configured: a source string, or an entry with its family (and, for a
    single file, its configuration folder and sha256)."""
    if isinstance(entry, str):
        entry = BaseModelSource(source=entry)
    family = Family(entry.family) if entry.family else family_of_name(name)
    defaults: dict[str, object] = dict(FAMILY_DEFAULTS[family])
    return BaseModelSpec(
        name=name, source=entry.source, family=family, config=entry.config, sha256=entry.sha256, **defaults
    )  # type: ignore[arg-type]


def base_model_registry(
    settings: Settings, registered: Mapping[str, BaseModelSource] | None = None
) -> dict[str, BaseModelSpec]:
    """Every base model this deployment offers: the built-in tiny ones, those configured in the settings, then those
    an operator registered at run time (`registered`: the base-models table's rows), then the aliases.

    The deployment's own names win: a row whose name a built-in or the settings took since it was registered is
    left out (the API refuses to register such a name in the first place)."""
    registry = dict(BUILTIN_MODELS)
    for name, entry in settings.base_models.items():
        registry[name] = configured_spec(name, entry)
    for name, entry in (registered or {}).items():
        if name not in registry and name not in settings.base_model_aliases:
            registry[name] = configured_spec(name, entry)
    for alias, target in settings.base_model_aliases.items():
        if target in registry and alias not in registry:
            registry[alias] = registry[target]
    return registry


# --- issue 16: run-time base models ---
def reserved_base_model_name(name: str, settings: Settings) -> str | None:
    """Why `name` cannot be registered at run time (a built-in's, a configured model's or an alias), or None."""
    if name in BUILTIN_MODELS:
        return f"{name!r} is a built-in base model"
    if name in settings.base_models:
        return f"{name!r} is configured in this deployment's settings"
    if name in settings.base_model_aliases:
        return f"{name!r} is an alias in this deployment's settings"
    return None


def _is_location(value: str) -> bool:
    """A local absolute path or an s3://bucket/key URI (the workers read no other kind)."""
    if value.startswith("s3://"):
        bucket, _, key = value.removeprefix("s3://").partition("/")
        # The key becomes a path in the workers' model cache: no segment may climb out of it.
        return bool(bucket) and bool(key.strip("/")) and not {".", ".."} & set(key.split("/"))
    return value.startswith(("/", "~/"))


def base_model_source_problem(entry: BaseModelSource) -> tuple[str, str] | None:
    """(field, why) of the first thing wrong with a base model's weights entry, or None when it can be used."""
    if entry.source.startswith(BUILTIN_PREFIX):
        return "source", "built-in base models are not registered"
    if not _is_location(entry.source):
        return "source", "must be an absolute local path or an s3://bucket/key URI"
    if entry.sha256 is not None and not entry.source.endswith(".safetensors"):
        return "sha256", "is checked on a single .safetensors file only"
    if entry.source.endswith(".safetensors"):
        if entry.config is None:
            return "config", "a single .safetensors file needs its family's configuration folder"
        if not _is_location(entry.config):
            return "config", "must be an absolute local path or an s3://bucket/key URI"
    elif entry.config is not None:
        return "config", "is for a single .safetensors file only (a diffusers folder has its own)"
    return None


# --- end issue 16: run-time base models ---


@dataclass(frozen=True)
class CatalogEntry:
    """A base model as clients see it: the spec and every other name that reaches it."""

    spec: BaseModelSpec
    aliases: tuple[str, ...]
    is_default: bool


def base_model_catalog(
    settings: Settings, registered: Mapping[str, BaseModelSource] | None = None
) -> list[CatalogEntry]:
    """The base models this deployment offers (`registered`: as in `base_model_registry`), each once (aliases
    listed with their target), by name."""
    registry = base_model_registry(settings, registered)
    entries = []
    for name, spec in sorted(registry.items()):
        if spec.name != name:
            continue  # an alias: listed under the model it names
        aliases = tuple(sorted(alias for alias, target in registry.items() if target is spec and alias != name))
        default = settings.default_base_model in (name, *aliases)
        entries.append(CatalogEntry(spec=spec, aliases=aliases, is_default=default))
    return entries
