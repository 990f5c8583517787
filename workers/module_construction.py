"""One lock for creating torch modules and parameters in a worker process.

While diffusers and peft load weights they build modules on the meta device by replacing
`torch.nn.Module.register_parameter` for the whole process (accelerate's and peft's `init_empty_weights`, used by
`from_pretrained` and by `load_lora_weights`). A parameter another thread creates meanwhile, such as a LoRA layer
of a training that starts while a generation loads an adapter, lands on the meta device, and that training fails
at its first backward pass ("expected device meta but got cpu"). Every place that creates modules or adapter
layers holds this lock, so they never overlap; running models (forward, backward) needs no lock.

Two such windows that do overlap (one of them outside the lock: a library or a test loading on its own) can leave
the replacement in place for good: each saves what it found and puts it back on exit, so the one that exits last
restores the other's replacement, and every parameter the process creates afterwards is a meta tensor (seen in CI
as "Cannot copy out of meta tensor" in a training that ran after such an overlap). The lock's outermost entry
therefore puts torch's own functions back when it finds them replaced, and says so in the log.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

import torch

log = logging.getLogger(__name__)

# torch's own module-construction hooks, as they are before anything replaces them (this module is imported
# before any model is loaded).
_TORCH_HOOKS = {name: getattr(torch.nn.Module, name) for name in ("register_parameter", "register_buffer")}


def restore_torch_hooks() -> list[str]:
    """Put back torch's own `register_parameter`/`register_buffer` where a weights loader's replacement was left in
    place; the names it restored."""
    restored = []
    for name, original in _TORCH_HOOKS.items():
        if getattr(torch.nn.Module, name) is not original:
            setattr(torch.nn.Module, name, original)
            restored.append(name)
    return restored


class ModuleConstruction:
    """A re-entrant lock whose outermost entry first undoes a leaked meta-device replacement (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # only the holder changes it

    def __enter__(self) -> ModuleConstruction:
        self._lock.acquire()
        self._depth += 1
        if self._depth == 1:
            restored = restore_torch_hooks()
            if restored:
                log.warning(
                    "torch.nn.Module.%s was left replaced by an earlier weights load that overlapped another: "
                    "restored torch's own so new parameters are real tensors",
                    " and ".join(restored),
                )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._depth -= 1
        self._lock.release()


MODULE_CONSTRUCTION = ModuleConstruction()
