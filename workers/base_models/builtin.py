"""Building a built-in tiny base model once into the model cache, safely against concurrent builders."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from diffusers import DiffusionPipeline

from workers.module_construction import MODULE_CONSTRUCTION


def ensure_built(cache_dir: Path, folder: str, build: Callable[[], DiffusionPipeline]) -> Path:
    """The folder `cache_dir/folder` holding the pipeline `build` makes, saved with `save_pretrained` on first
    use; a concurrent builder that loses the race reuses the winner's folder."""
    target = cache_dir / folder
    if (target / "model_index.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=cache_dir))
    try:
        with MODULE_CONSTRUCTION:  # its modules are built in this thread while others may be loading weights
            pipeline = build()
        pipeline.save_pretrained(staging, safe_serialization=True)
        try:
            os.rename(staging, target)  # atomic: readers see the whole folder or none of it
        except OSError:
            if not (target / "model_index.json").exists():
                raise  # not a lost race with another builder: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
