"""The adapter-import use case's `AdapterFiles` port over `infra.lora_files` (torch-free), with the deployment's
limits: shared by the API (raw-body imports) and the notification handler (presigned imports)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from events.usecases.adapter_imports import AdapterFacts, AdapterRefused
from infra.base_models import BaseModelSpec
from infra.lora_files.checks import AdapterLimits, check_adapter
from infra.lora_files.convert import to_diffusers
from infra.lora_files.errors import AdapterFileError
from infra.lora_files.safetensors_file import header_bytes_needed
from infra.settings import Settings

log = logging.getLogger(__name__)

# The code of a file the checks or the conversion broke on without naming its problem (a reader's bug, or a
# malformation no check knows yet): still the file's fault as far as the caller can act, so a 422, never a 500.
INVALID_CODE = "adapter_invalid"
# A message quoted from such an error is cut to this: a file's names can be long.
MAX_QUOTED_CHARS = 300


@contextmanager
def refused() -> Iterator[None]:
    """A file error as the use case's refusal: its problem is the error code. Any other error of the pure checks
    and conversion (they touch only the bytes given) is `adapter_invalid` with its message, logged with its
    traceback; running out of memory stays what it is."""
    try:
        yield
    except AdapterFileError as exc:
        raise AdapterRefused(exc.problem.value, exc.message, field="file") from exc
    except MemoryError:
        raise
    except Exception as exc:
        log.warning("a LoRA file broke the checks or the conversion", exc_info=True)
        said = str(exc)[:MAX_QUOTED_CHARS] or type(exc).__name__
        raise AdapterRefused(
            INVALID_CODE, f"the file is not a LoRA file this service can read: {said}", "file"
        ) from exc


class LoraFiles:
    """Checks and converts LoRA files within the settings' rank and size limits."""

    def __init__(self, settings: Settings) -> None:
        self.limits = AdapterLimits(max_rank=settings.max_adapter_rank, max_bytes=settings.max_adapter_upload_bytes)

    def header_size(self, prefix: bytes) -> int:
        """How many leading bytes hold the file's header."""
        with refused():
            return header_bytes_needed(prefix)

    def check(self, header: bytes, file_size: int, spec: BaseModelSpec) -> AdapterFacts:
        """The file's naming, rank and layer count, if it fits `spec`."""
        with refused():
            summary = check_adapter(header, spec, self.limits, file_size=file_size)
        return AdapterFacts(naming=summary.naming, rank=summary.rank, layers=summary.layers)

    def to_diffusers(self, data: bytes, spec: BaseModelSpec) -> bytes:
        """The file in the naming the generator serves."""
        with refused():
            return to_diffusers(data, spec, self.limits)
