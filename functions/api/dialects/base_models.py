"""What a base model offers, as the model views and `GET /v1/base-models` show it: capabilities and sizes."""

from __future__ import annotations

from functions.api.schemas.base_models import SizeOut, SizesOut
from infra.base_models import BaseModelSpec, Capability

# The Scenario-style API's capability words; `training` is this service's (that API has no word for it).
SCENARIO_CAPABILITIES: dict[Capability, str] = {
    Capability.TEXT_TO_IMAGE: "txt2img",
    Capability.IMAGE_TO_IMAGE: "img2img",
    Capability.INPAINTING: "inpaint",
    Capability.TRAINING: "training",
}


def model_capabilities(spec: BaseModelSpec | None, model_type: str) -> list[str]:
    """A model's capabilities in the Scenario-style words: its base's, less training for a composition (it
    combines trained models and is not trained itself); none when its base is no longer offered."""
    if spec is None:
        return []
    words = [SCENARIO_CAPABILITIES[c] for c in spec.capabilities]
    if model_type.endswith("-composition"):
        words = [word for word in words if word != SCENARIO_CAPABILITIES[Capability.TRAINING]]
    return words


def sizes_out(spec: BaseModelSpec) -> SizesOut:
    """The sizes a base model generates: its default, its largest side and the multiple every side is of."""
    return SizesOut(
        default=SizeOut(width=spec.default_size, height=spec.default_size),
        max=SizeOut(width=spec.max_side, height=spec.max_side),
        multiple=spec.size_multiple,
    )
