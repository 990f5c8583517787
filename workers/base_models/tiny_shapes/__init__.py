"""`tiny-shapes`: a tiny SD 1.5-family base model whose pictures mean something: one coloured shape on a plain
background, steered by the prompt's colour, shape and background words ("a red circle on a white background").

Trained on the CPU in minutes by `python -m workers.base_models.tiny_shapes.train` on the procedural dataset of
`dataset.py`; the weights that script wrote are committed in `weights/` (float16 safetensors, a few MB) and
`ensure_tiny_shapes` assembles a diffusers folder from them in the model cache, which then loads like any other
base model. Its architecture is tiny-sd's but for a 4x VAE (`parts.py`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from workers.base_models.builtin import ensure_built
from workers.base_models.tiny_shapes import parts
from workers.job_errors import BaseModelUnavailable


def _weights_digest(folder: Path) -> str:
    """A digest of the committed weights and build info, so new weights make a new cache folder, never a stale hit."""
    digest = hashlib.sha256()
    for path in [*(parts.weights_file(name, folder) for name in parts.COMPONENTS), folder / parts.BUILD_INFO]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def build_tiny_shapes(folder: Path = parts.WEIGHTS_DIR) -> StableDiffusionPipeline:
    """The pipeline in memory, its components loaded from the weights in `folder` (the committed ones by default)."""
    info = json.loads((folder / parts.BUILD_INFO).read_text())
    tokens = parts.tokenizer()
    components = {
        "unet": parts.unet(),
        "vae": parts.vae(scaling_factor=float(info["scaling_factor"])),
        "text_encoder": parts.text_encoder(tokens),
    }
    for name, module in components.items():
        # strict: a weights file that does not fit the architecture in parts.py is an error, not a half-loaded model
        module.load_state_dict(load_file(str(parts.weights_file(name, folder))), strict=True)
    return StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=tokens,
        unet=components["unet"],
        scheduler=parts.scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def ensure_tiny_shapes(cache_dir: Path, weights: Path = parts.WEIGHTS_DIR) -> Path:
    """The diffusers folder of tiny-shapes in the model cache, assembled once from the committed weights; safe
    against concurrent builders."""
    try:
        digest = _weights_digest(weights)
    except OSError as exc:
        raise BaseModelUnavailable(
            f"tiny-shapes' weights are missing ({exc}); make them with "
            f"python -m workers.base_models.tiny_shapes.train --out {weights}"
        ) from exc
    return ensure_built(cache_dir, f"tiny-shapes-{digest}", lambda: build_tiny_shapes(weights))
