"""LoRA adapters on any family's pipeline: add, export in diffusers' format, snapshot for resuming."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from workers.module_construction import MODULE_CONSTRUCTION

# The CLIP attention projections, as diffusers' train_dreambooth_lora.py adapts them (the UNet's targets
# come from the base model's registry entry).
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
ADAPTER_FILE = "pytorch_lora_weights.safetensors"


def add_lora(module: torch.nn.Module, rank: int, targets: Sequence[str]) -> list[torch.nn.Parameter]:
    """Add fresh LoRA layers (alpha = rank, so scale 1) on `targets` of `module` and return its parameters to
    train, in float32 (the module's base weights must already be frozen)."""
    with MODULE_CONSTRUCTION:
        module.add_adapter(  # type: ignore[operator]
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(targets))
        )
    params = [p for p in module.parameters() if p.requires_grad]
    for param in params:
        # Master copies of the trained weights stay in float32 even when the base runs in half precision.
        param.data = param.data.float()
    return params


def add_adapters(
    pipeline: StableDiffusionPipeline, rank: int, train_text_encoder: bool, unet_targets: tuple[str, ...]
) -> list[torch.nn.Parameter]:
    """SD 1.5: add fresh LoRA layers on the UNet (and the text encoder) and return the parameters to train."""
    pipeline.unet.requires_grad_(False)
    pipeline.vae.requires_grad_(False)
    pipeline.text_encoder.requires_grad_(False)
    with MODULE_CONSTRUCTION:  # both modules' layers in one hold, as a training adds them
        params = add_lora(pipeline.unet, rank, unet_targets)
        if train_text_encoder:
            params += add_lora(pipeline.text_encoder, rank, TEXT_ENCODER_TARGETS)
    return params


def lora_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's LoRA weights in peft's naming, detached, on the CPU."""
    return {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(module).items()}


def export_adapter(pipeline: StableDiffusionPipeline, train_text_encoder: bool) -> bytes:
    """The adapter as one safetensors file that `load_lora_weights` reads.

    Keys stay in peft's naming (`lora_A`/`lora_B`). diffusers' `convert_state_dict_to_diffusers`, which its
    training examples apply, renames only attention projections: on an adapter that also covers convolutions
    or feed-forwards it yields mixed names, and `load_lora_weights` then silently drops the attention part.
    """
    layers = {"unet": lora_state(pipeline.unet)}
    if train_text_encoder:
        layers["text_encoder"] = lora_state(pipeline.text_encoder)
    return save_adapter_file(pipeline, layers)


# What each adapted component is called in a pipeline class's `save_lora_weights` (SD 1.5, SDXL and FLUX alike).
_SAVE_ARGUMENTS = {
    "unet": "unet_lora_layers",
    "transformer": "transformer_lora_layers",
    "text_encoder": "text_encoder_lora_layers",
    "text_encoder_2": "text_encoder_2_lora_layers",
}


def save_adapter_file(pipeline: DiffusionPipeline, layers: dict[str, dict[str, torch.Tensor]]) -> bytes:
    """One safetensors file of LoRA layers by pipeline component (`unet` or `transformer`, `text_encoder`,
    `text_encoder_2`; peft's naming), written by the pipeline class's own `save_lora_weights` so its
    `load_lora_weights` reads it back."""
    arguments = {_SAVE_ARGUMENTS[component]: state for component, state in layers.items()}
    with tempfile.TemporaryDirectory() as tmp:
        type(pipeline).save_lora_weights(save_directory=tmp, safe_serialization=True, **arguments)  # type: ignore[attr-defined]
        return (Path(tmp) / ADAPTER_FILE).read_bytes()


def denoiser_of(pipeline: DiffusionPipeline) -> tuple[str, torch.nn.Module]:
    """The pipeline's denoiser and its component name: the UNet (SD 1.5, SDXL) or the transformer (FLUX)."""
    if getattr(pipeline, "unet", None) is not None:
        return "unet", pipeline.unet
    return "transformer", pipeline.transformer


def random_adapter(pipeline: DiffusionPipeline, seed: int, rank: int, unet_targets: tuple[str, ...]) -> bytes:
    """An adapter file with random, non-zero weights on the pipeline's denoiser (a UNet or a FLUX transformer):
    as loadable as a trained one, made in a blink (for tests and benchmarks). Adds layers to `pipeline`, so pass
    one that is thrown away after."""
    component, denoiser = denoiser_of(pipeline)
    denoiser.requires_grad_(False)
    with MODULE_CONSTRUCTION:
        denoiser.add_adapter(
            LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(unet_targets))
        )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in (p for p in denoiser.parameters() if p.requires_grad):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return save_adapter_file(pipeline, {component: get_peft_model_state_dict(denoiser)})


def snapshot(
    adapter: dict[str, dict[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    lr_scheduler: Any,
    generator: torch.Generator,
    step: int,
    epochs_done: int,
    data_order: dict[str, Any] | None = None,
) -> bytes:
    """Everything needed to continue exactly where training stands: the family's adapter state (by component),
    optimizer, schedule, RNG, and the loop's place in its data order (plain ints and lists)."""
    state = {
        "adapter": adapter,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict(),
        "rng": generator.get_state(),
        "step": step,
        "epochs_done": epochs_done,
        "data_order": data_order or {},
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def load_snapshot(data: bytes) -> dict[str, Any]:
    """Read a snapshot; `weights_only` so a tampered file cannot run code."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def snapshot_adapter(state: dict[str, Any]) -> dict[str, dict[str, torch.Tensor]]:
    """A snapshot's adapter state by component; also reads the SD-only snapshots written before families (their
    `unet` and `text_encoder` at the top level), so a training checkpointed then still resumes."""
    if "adapter" in state:
        return state["adapter"]
    return {name: state[name] for name in ("unet", "text_encoder") if state.get(name) is not None}


def restore(
    state: dict[str, Any], optimizer: torch.optim.Optimizer, lr_scheduler: Any, generator: torch.Generator
) -> None:
    """Put a snapshot's optimizer, schedule and RNG back (the adapter goes back through its family)."""
    optimizer.load_state_dict(state["optimizer"])
    lr_scheduler.load_state_dict(state["lr_scheduler"])
    generator.set_state(state["rng"])
