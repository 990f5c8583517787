"""tiny-shapes: a tiny SD 1.5-family base model trained on coloured shapes (being built this session)."""

from __future__ import annotations

from pathlib import Path

from workers.job_errors import BaseModelUnavailable


def ensure_tiny_shapes(cache_dir: Path) -> Path:
    """The diffusers folder of tiny-shapes in the model cache."""
    raise BaseModelUnavailable("tiny-shapes is not built yet")
