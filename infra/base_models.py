"""Which base models exist and where their weights are: metadata only (the loader lives in workers/).

The API uses this to validate a request before it queues a job; workers use it to load the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class BaseModelSpec:
    """A base model: its registry name, where its weights are, and the defaults requests inherit."""

    name: str
    source: str  # "builtin:<name>", a local folder, or an s3:// prefix
    model_type: str  # seed 003's words, e.g. "sd-1_5-lora"
    default_size: int
    max_side: int
    default_steps: int
    default_guidance: float = 7.5
    # UNet modules a LoRA adapts: the attention projections, as diffusers' DreamBooth LoRA script does.
    lora_targets: tuple[str, ...] = ATTENTION_TARGETS
    # Typical training speed (steps per second at the default size), for `estimatedCompletion` only.
    train_steps_per_second: float = 1.0

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
    "sd-xl": dict(model_type="sd-xl-lora", default_size=1024, max_side=2048, default_steps=30),
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
