"""Test support: write a diffusers Stable Diffusion pipeline as one original-layout (LDM) `.safetensors` checkpoint,
the kind civitai distributes, so the single-file loader can be tested on a model whose folder form is known.

Diffusers reads these files (`from_single_file`) but ships no writer; this is the inverse of its reader for the
parts the checkpoints hold: the UNet under `model.diffusion_model.`, the VAE under `first_stage_model.`, and the text
encoders: SD 1.5's CLIP under `cond_stage_model.transformer.`, SDXL's CLIP ViT-L under
`conditioner.embedders.0.transformer.` and its OpenCLIP ViT-bigG (fused q/k/v, transposed projection) under
`conditioner.embedders.1.model.`. It is a fixture builder, checked by `tests/model/test_single_file.py` against
diffusers' own reader, not product code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors.torch import save_file

UNET_PREFIX = "model.diffusion_model."
SDXL_CLIP_PREFIX = "conditioner.embedders.0.transformer."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# A ResNet block's layers: diffusers' names -> the original's.
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_VAE_TOP = {"conv_norm_out": "norm_out"}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename_resnet(rest: str) -> str:
    layer, _, param = rest.partition(".")
    return f"{_UNET_RESNET.get(layer, layer)}.{param}"


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int) -> dict[str, torch.Tensor]:
    """A diffusers UNet's state dict in the original layout (input, middle and output blocks), unprefixed."""
    per_block = layers_per_block + 1  # the original counts a block's down- or upsampler as one more layer
    up_has_attention = {int(m.group(1)) for k in state if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        if module in _UNET_TOP:
            out[f"{_UNET_TOP[module]}.{param}"] = tensor
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            index = 1 + block * per_block + layer
            out[
                f"input_blocks.{index}.0.{_rename_resnet(rest)}"
                if kind == "resnets"
                else f"input_blocks.{index}.1.{rest}"
            ] = tensor
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            out[f"input_blocks.{1 + int(m.group(1)) * per_block + layers_per_block}.0.op.{m.group(2)}"] = tensor
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            out[f"middle_block.{2 * int(m.group(1))}.{_rename_resnet(m.group(2))}"] = tensor
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            out[f"middle_block.1.{m.group(1)}"] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            block, kind, layer, rest = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
            index = block * per_block + layer
            out[
                f"output_blocks.{index}.0.{_rename_resnet(rest)}"
                if kind == "resnets"
                else f"output_blocks.{index}.1.{rest}"
            ] = tensor
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            block = int(m.group(1))
            slot = 2 if block in up_has_attention else 1  # after the block's attention, when it has one
            out[f"output_blocks.{block * per_block + layers_per_block}.{slot}.conv.{m.group(2)}"] = tensor
        else:
            raise KeyError(f"no original-layout name for UNet key {key}")
    return out


def vae_to_ldm(state: dict[str, torch.Tensor], num_up_blocks: int) -> dict[str, torch.Tensor]:
    """A diffusers KL VAE's state dict in the original layout, unprefixed. The original's decoder counts its up
    blocks from the lowest resolution's end, and its mid-block attention uses 1x1 convolutions."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if m := re.fullmatch(r"(encoder|decoder)\.(conv_norm_out)\.(.+)", key):
            out[f"{m.group(1)}.{_VAE_TOP[m.group(2)]}.{m.group(3)}"] = tensor
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            out[
                f"encoder.down.{m.group(1)}.block.{m.group(2)}.{m.group(3).replace('conv_shortcut', 'nin_shortcut')}"
            ] = tensor
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            out[f"encoder.down.{m.group(1)}.downsample.conv.{m.group(2)}"] = tensor
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            block = num_up_blocks - 1 - int(m.group(1))
            out[f"decoder.up.{block}.block.{m.group(2)}.{m.group(3).replace('conv_shortcut', 'nin_shortcut')}"] = tensor
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            out[f"decoder.up.{num_up_blocks - 1 - int(m.group(1))}.upsample.conv.{m.group(2)}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            rest = m.group(3).replace("conv_shortcut", "nin_shortcut")
            out[f"{m.group(1)}.mid.block_{int(m.group(2)) + 1}.{rest}"] = tensor
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", key):
            name = _VAE_ATTENTION[m.group(2)]
            value = tensor[:, :, None, None] if m.group(3) == "weight" and name != "norm" else tensor
            out[f"{m.group(1)}.mid.attn_1.{name}.{m.group(3)}"] = value
        else:
            out[key] = tensor  # conv_in, conv_out, quant_conv, post_quant_conv: the same names
    return out


def _clip_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # The original names the CLIP weights `text_model.…`; transformers >= 5.6 flattened CLIPTextModel's own names.
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v for k, v in state.items()}


_OPEN_CLIP_LAYER = {
    "layer_norm1": "ln_1",
    "layer_norm2": "ln_2",
    "mlp.fc1": "mlp.c_fc",
    "mlp.fc2": "mlp.c_proj",
    "self_attn.out_proj": "attn.out_proj",
}


def open_clip_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIPTextModelWithProjection's state dict in OpenCLIP's layout: one fused in-projection per attention,
    the text projection as a matrix applied on the right, unprefixed."""
    state = _clip_names(state)
    out: dict[str, torch.Tensor] = {
        "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
        "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
        "ln_final.weight": state["text_model.final_layer_norm.weight"],
        "ln_final.bias": state["text_model.final_layer_norm.bias"],
        "text_projection": state["text_projection.weight"].T.contiguous(),
    }
    layers = {int(m.group(1)) for k in state if (m := re.match(r"text_model\.encoder\.layers\.(\d+)\.", k))}
    for n in sorted(layers):
        source, target = f"text_model.encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for param in ("weight", "bias"):
            fused = [state[f"{source}self_attn.{p}_proj.{param}"] for p in "qkv"]
            out[f"{target}attn.in_proj_{param}"] = torch.cat(fused, dim=0)
            for ours, theirs in _OPEN_CLIP_LAYER.items():
                out[f"{target}{theirs}.{param}"] = state[f"{source}{ours}.{param}"]
    return out


def sd_single_file_state(pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline) -> dict[str, torch.Tensor]:
    """Every weight of a Stable Diffusion 1.5 or SDXL pipeline under its original-layout name."""
    unet = unet_to_ldm(pipeline.unet.state_dict(), pipeline.unet.config.layers_per_block)
    vae = vae_to_ldm(pipeline.vae.state_dict(), len(pipeline.vae.config.up_block_types))
    state = {UNET_PREFIX + k: v for k, v in unet.items()}
    state |= {VAE_PREFIX + k: v for k, v in vae.items()}
    clip = _clip_names(pipeline.text_encoder.state_dict())
    if isinstance(pipeline, StableDiffusionXLPipeline):
        state |= {SDXL_CLIP_PREFIX + k: v for k, v in clip.items()}
        open_clip = open_clip_to_ldm(pipeline.text_encoder_2.state_dict())
        state |= {SDXL_OPEN_CLIP_PREFIX + k: v for k, v in open_clip.items()}
    else:
        state |= {CLIP_PREFIX + k: v for k, v in clip.items()}
    return {k: v.detach().contiguous() for k, v in state.items()}


def save_sd_single_file(pipeline: StableDiffusionPipeline | StableDiffusionXLPipeline, path: Path) -> Path:
    """Write the pipeline as one original-layout `.safetensors` checkpoint at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd_single_file_state(pipeline), str(path))
    return path
