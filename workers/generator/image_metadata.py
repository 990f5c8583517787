"""How an image was made, in the words AUTOMATIC1111's web UI writes into its files (its "infotext"), so that the
tools that read those (the web UI's PNG Info tab, civitai's upload, image browsers) read ours.

The text, as A1111's `create_infotext` (modules/processing.py) builds it, and what we put in it:

    <prompt> <lora:NAME:WEIGHT> ...
    Negative prompt: <negative prompt>
    Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512, Model hash: 0123456789, Model: name,
    Denoising strength: 0.6, Lora hashes: "NAME: 0123456789ab, NAME2: ba9876543210"

(the last line is one line). Its rules:
- The prompt is as the user wrote it; A1111's users activate a LoRA by writing `<lora:NAME:WEIGHT>` in it, so the
  tools find LoRAs and their weights there. Ours are request fields, so we append one such tag per adapter, in the
  request's order. NAME is the adapter's model id, and `MODELID-EPOCH` for an epoch's checkpoint (EPOCH as stored,
  six digits): the names kohya's sd-scripts gives a training's final and per-epoch files.
- "Negative prompt:" starts the second line only when there is a negative prompt the pipeline used (FLUX.1 uses
  one only under true guidance, `family_arguments`).
- The last line is `Key: value` pairs joined by ", ", in A1111's order; a pair whose value is unknown is left out.
  A value holding a comma, a colon or a newline is written as a JSON string (A1111's `infotext_utils.quote`), which
  is why "Lora hashes", made of `NAME: HASH` items, is always in quotes.
- Sampler: A1111's name of the diffusers scheduler the pipeline ran (`sampler_name`), with "Schedule type" only
  for a non-default sigma schedule (Karras, Exponential, Beta). A scheduler without an A1111 name is written by its
  class name.
- CFG scale: the classifier-free guidance the pipeline applied. FLUX.1's guidance is distilled (an input of its
  transformer, not two passes per step): written as Forge writes it, "CFG scale: 1, Distilled CFG Scale: 3.5", and
  CFG scale is the true-guidance scale when a negative prompt turned that on.
- Seed: the seed of this image. Output `i` of a request is made from `seed + i` (mod 2^32) alone, as in A1111, so
  the seed written reproduces the image as the only output of a request.
- Model hash: A1111's short hash of a checkpoint (its file's sha256, first 10 hex digits), only when the base model
  is one file whose sha256 the operator registered; Model: the base model's registry name.
- Denoising strength: image-to-image and inpainting only.
- Lora hashes: A1111's short hash of each LoRA file (`lora_short_hash`: the first 12 hex digits of the sha256 of
  the file's bytes after the safetensors header, civitai's "AutoV3"), of the file the generator loaded (the
  diffusers-format file; a kohya export of the same adapter has other bytes and so another hash).

Where it goes: PNG, a `parameters` text chunk (tEXt, or iTXt when the text is not Latin-1; Pillow's `PngInfo`
picks); JPEG, the EXIF UserComment (tag 0x9286) as A1111 writes it through piexif: b"UNICODE\\0" and the text in
UTF-16 big-endian, in a big-endian EXIF block. Both are deterministic: same text, same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from infra.lora_files.safetensors_file import header_bytes_needed

PNG_KEY = "parameters"
USER_COMMENT_TAG = 0x9286
EXIF_IFD_POINTER_TAG = 0x8769
UNICODE_PREFIX = b"UNICODE\x00"
SEED_SPACE = 2**32  # seeds are 32-bit (events/generation.py MAX_SEED); seed + i wraps within them

# A1111's sampler names for diffusers' schedulers (A1111's names as in modules/sd_samplers_kdiffusion.py and
# diffusers' own mapping table in its docs, "A1111/k-diffusion" column).
_SAMPLERS = {
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "FlowMatchEulerDiscreteScheduler": "Euler",
    "HeunDiscreteScheduler": "Heun",
    "LMSDiscreteScheduler": "LMS",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverSDEScheduler": "DPM++ SDE",
    "DPMSolverSinglestepScheduler": "DPM++ 2S a",
    "DDIMScheduler": "DDIM",
    "PNDMScheduler": "PLMS",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "DDPMScheduler": "DDPM",
    "DEISMultistepScheduler": "DEIS",
    "TCDScheduler": "TCD",
}
# DPMSolverMultistepScheduler is several A1111 samplers, by algorithm and order.
_DPM_MULTISTEP = {
    ("dpmsolver++", 2): "DPM++ 2M",
    ("sde-dpmsolver++", 2): "DPM++ 2M SDE",
    ("dpmsolver++", 3): "DPM++ 3M",
    ("sde-dpmsolver++", 3): "DPM++ 3M SDE",
}
_SCHEDULE_TYPES = {"use_karras_sigmas": "Karras", "use_exponential_sigmas": "Exponential", "use_beta_sigmas": "Beta"}
# A1111's infotext_utils.parse_generation_parameters: one `Key: value` pair of the last line.
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@dataclass(frozen=True)
class LoraUse:
    """One LoRA applied to an image: the name its tag and hash go under, its weight, its short hash if known."""

    name: str
    weight: float
    short_hash: str | None = None


@dataclass(frozen=True)
class ImageParameters:
    """Everything the infotext of one image says."""

    prompt: str
    negative_prompt: str | None
    steps: int
    sampler: str
    cfg_scale: float
    seed: int
    width: int
    height: int
    model: str
    schedule_type: str | None = None
    distilled_cfg_scale: float | None = None  # FLUX.1's embedded guidance
    model_hash: str | None = None
    denoising_strength: float | None = None
    loras: Sequence[LoraUse] = field(default_factory=tuple)


def lora_name(model_id: str, epoch: str | None) -> str:
    """The name an adapter goes under in `<lora:NAME:WEIGHT>`: its model id, `MODELID-EPOCH` for a checkpoint."""
    return model_id if epoch is None else f"{model_id}-{epoch}"


def output_seed(seed: int, index: int) -> int:
    """The seed output `index` of a request with `seed` is made from."""
    return (seed + index) % SEED_SPACE


def sampler_name(scheduler: object) -> tuple[str, str | None]:
    """A1111's (sampler, schedule type) for a diffusers scheduler instance; the schedule type only when the
    scheduler's sigmas are not its default spacing."""
    kind = type(scheduler).__name__
    config = getattr(scheduler, "config", {})
    if kind == "DPMSolverMultistepScheduler":
        key = (config.get("algorithm_type", "dpmsolver++"), int(config.get("solver_order", 2)))
        sampler = _DPM_MULTISTEP.get(key, kind)
    else:
        sampler = _SAMPLERS.get(kind, kind)
    schedule = next((name for option, name in _SCHEDULE_TYPES.items() if config.get(option)), None)
    return sampler, schedule


def lora_short_hash(safetensors_file: bytes) -> str:
    """A1111's short hash of a LoRA file (`hashes.addnet_hash_safetensors`, first 12 hex digits): the sha256 of
    the bytes after the header, so editing the metadata keeps the hash (the first 12 digits of kohya's
    `sshs_model_hash`, infra/lora_files/kohya_metadata.py). Raises `AdapterFileError` on a file with no header."""
    return hashlib.sha256(memoryview(safetensors_file)[header_bytes_needed(safetensors_file) :]).hexdigest()[:12]


def _number(value: float) -> str:
    # A1111's scales are Python floats: "7.0", "0.6".
    return repr(float(value))


def quote(value: object) -> str:
    """A1111's `infotext_utils.quote`: a value with a comma, colon or newline as a JSON string, others as they are."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def infotext(parameters: ImageParameters) -> str:
    """The A1111 `parameters` text of one image (see the module docstring for what each part says)."""
    prompt = parameters.prompt
    tags = " ".join(f"<lora:{lora.name}:{_weight(lora.weight)}>" for lora in parameters.loras)
    if tags:
        prompt = f"{prompt} {tags}"
    hashes = ", ".join(
        f"{lora.name.replace(':', '').replace(',', '')}: {lora.short_hash}"
        for lora in parameters.loras
        if lora.short_hash
    )
    pairs: dict[str, object | None] = {
        "Steps": parameters.steps,
        "Sampler": parameters.sampler,
        "Schedule type": parameters.schedule_type,
        "CFG scale": _number(parameters.cfg_scale),
        "Distilled CFG Scale": None
        if parameters.distilled_cfg_scale is None
        else _number(parameters.distilled_cfg_scale),
        "Seed": parameters.seed,
        "Size": f"{parameters.width}x{parameters.height}",
        "Model hash": parameters.model_hash,
        "Model": parameters.model,
        "Denoising strength": None if parameters.denoising_strength is None else _number(parameters.denoising_strength),
        "Lora hashes": hashes or None,
    }
    last = ", ".join(f"{key}: {quote(value)}" for key, value in pairs.items() if value is not None)
    negative = f"\nNegative prompt: {parameters.negative_prompt}" if parameters.negative_prompt else ""
    return f"{prompt}{negative}\n{last}".strip()


def _weight(weight: float) -> str:
    # A1111 users write `<lora:x:1>` or `<lora:x:0.8>`: no trailing ".0" on a whole weight.
    return f"{weight:g}"


@dataclass(frozen=True)
class ParsedInfotext:
    """An infotext read back: the prompt (LoRA tags included), the negative prompt, and the last line's pairs."""

    prompt: str
    negative_prompt: str
    fields: dict[str, str]

    def loras(self) -> dict[str, float]:
        """The `<lora:NAME:WEIGHT>` tags of the prompt, name to weight."""
        return {name: float(weight) for name, weight in re.findall(r"<lora:([^:>]+):([^:>]+)>", self.prompt)}


def parse_infotext(text: str) -> ParsedInfotext:
    """Read an infotext the way A1111's `parse_generation_parameters` does: the last line is the pairs when it has
    at least three, lines before "Negative prompt:" are the prompt, the rest the negative prompt; quoted values
    are unquoted."""
    lines = text.strip().split("\n")
    last = lines[-1]
    if len(_PAIR.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    for line in lines[:-1]:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            negative.append(line[len("Negative prompt:") :].strip())
        elif negative:
            negative.append(line)
        else:
            prompt.append(line)
    fields = {}
    for key, value in _PAIR.findall(last):
        if value.startswith('"') and value.endswith('"'):
            value = json.loads(value)
        fields[key] = value
    return ParsedInfotext(prompt="\n".join(prompt), negative_prompt="\n".join(negative), fields=fields)


def png_info(text: str) -> PngInfo:
    """The PNG text chunks carrying an infotext."""
    info = PngInfo()
    info.add_text(PNG_KEY, text)
    return info


def exif_with_user_comment(text: str) -> bytes:
    """A big-endian EXIF block (b"Exif\\0\\0" + TIFF) whose only entry is the Exif IFD's UserComment holding `text`
    as A1111 writes it (piexif's UserComment.dump(text, encoding="unicode")). Built by hand: Pillow writes an
    unknown tag's bytes as type BYTE, where EXIF says UserComment is UNDEFINED."""
    comment = UNICODE_PREFIX + text.encode("utf-16-be")
    exif_ifd_offset = 8 + 2 + 12 + 4  # the TIFF header, then IFD0: its count, one entry, the next-IFD link
    comment_offset = exif_ifd_offset + 2 + 12 + 4
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8)
    tiff += struct.pack(">HHHII", 1, EXIF_IFD_POINTER_TAG, 4, 1, exif_ifd_offset) + struct.pack(">I", 0)
    tiff += struct.pack(">HHHII", 1, USER_COMMENT_TAG, 7, len(comment), comment_offset) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + tiff + comment


def read_parameters(data: bytes) -> str | None:
    """The infotext an encoded PNG or JPEG carries (PNG `parameters` chunk, JPEG EXIF UserComment), or None."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            text = image.info.get(PNG_KEY)
            return text if isinstance(text, str) else None
        comment = image.getexif().get_ifd(EXIF_IFD_POINTER_TAG).get(USER_COMMENT_TAG)
    if not isinstance(comment, bytes):
        return None
    if comment.startswith(UNICODE_PREFIX):
        return comment[len(UNICODE_PREFIX) :].decode("utf-16-be")
    return comment[8:].decode("ascii", errors="replace")
