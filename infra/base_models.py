"""Which base models exist and where their weights are: metadata only (the loader lives in workers/).

The API uses this to validate a request before it queues a job and to list the catalog
(`GET /v1/base-models`); workers use it to load the weights. No torch here: the API must not import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from infra.settings import Settings

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


class Capability(StrEnum):
    """What a base model can be used for."""

    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINTING = "inpainting"
    TRAINING = "training"


# Every Stable Diffusion checkpoint generates in the three modes (diffusers derives the image-to-image and
# inpainting pipelines from the text-to-image one). The trainer drives an SD 1.5 UNet with one text encoder,
# so only that family trains.
GENERATION_CAPABILITIES = (Capability.TEXT_TO_IMAGE, Capability.IMAGE_TO_IMAGE, Capability.INPAINTING)
SD15_CAPABILITIES = (*GENERATION_CAPABILITIES, Capability.TRAINING)


@dataclass(frozen=True)
class BaseModelSpec:
    """A base model: its registry name, where its weights are, and the defaults requests inherit."""

    name: str
    source: str  # "builtin:<name>", a local folder, or an s3:// prefix
    model_type: str  # the Scenario-style API's words, e.g. "sd-1_5-lora"
    default_size: int
    max_side: int
    default_steps: int
    default_guidance: float = 7.5
    # UNet modules a LoRA adapts: the attention projections, as diffusers' DreamBooth LoRA script does.
    lora_targets: tuple[str, ...] = ATTENTION_TARGETS
    # Typical training speed (steps per second at the default size), for `estimatedCompletion` only.
    train_steps_per_second: float = 1.0
    capabilities: tuple[Capability, ...] = SD15_CAPABILITIES

    @property
    def family(self) -> str:
        """The model family in the Scenario-style API's words (`sd-1_5`, `sd-xl`): adapters only mix within one."""
        return self.model_type.removesuffix("-lora")

    @property
    def is_builtin(self) -> bool:
        """Whether the weights are made in-process rather than read from storage."""
        return self.source.startswith(BUILTIN_PREFIX)


TINY_SD = BaseModelSpec(
    name="tiny-sd",
    source=f"{BUILTIN_PREFIX}tiny-sd",
    model_type="sd-1_5-lora",
    default_size=64,
    max_side=1536,
    default_steps=10,
    train_steps_per_second=8.0,
    lora_targets=TINY_SD_TARGETS,
)

# Defaults for well-known families when an operator points a name at their weights.
_FAMILY_DEFAULTS = {
    "sd-xl": dict(
        model_type="sd-xl-lora",
        default_size=1024,
        max_side=2048,
        default_steps=30,
        capabilities=GENERATION_CAPABILITIES,
    ),
}
_SD15_DEFAULTS = dict(model_type="sd-1_5-lora", default_size=512, max_side=1536, default_steps=30)


def base_model_registry(settings: Settings) -> dict[str, BaseModelSpec]:
    """Every base model this deployment offers: the built-in tiny one plus those configured."""
    registry = {TINY_SD.name: TINY_SD}
    for name, source in settings.base_models.items():
        defaults = next((d for prefix, d in _FAMILY_DEFAULTS.items() if name.startswith(prefix)), _SD15_DEFAULTS)
        registry[name] = BaseModelSpec(name=name, source=source, **defaults)  # type: ignore[arg-type]
    for alias, target in settings.base_model_aliases.items():
        if target in registry and alias not in registry:
            registry[alias] = registry[target]
    return registry


@dataclass(frozen=True)
class CatalogEntry:
    """A base model as clients see it: the spec and every other name that reaches it."""

    spec: BaseModelSpec
    aliases: tuple[str, ...]
    is_default: bool


def base_model_catalog(settings: Settings) -> list[CatalogEntry]:
    """The base models this deployment offers, each once (aliases listed with their target), by name."""
    registry = base_model_registry(settings)
    entries = []
    for name, spec in sorted(registry.items()):
        if spec.name != name:
            continue  # an alias: listed under the model it names
        aliases = tuple(sorted(alias for alias, target in registry.items() if target is spec and alias != name))
        default = settings.default_base_model in (name, *aliases)
        entries.append(CatalogEntry(spec=spec, aliases=aliases, is_default=default))
    return entries
