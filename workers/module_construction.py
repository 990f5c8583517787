"""One lock for creating torch modules and parameters in a worker process.

While diffusers and peft load weights they build modules on the meta device by replacing
`torch.nn.Module.register_parameter` for the whole process (accelerate's and peft's `init_empty_weights`, used by
`from_pretrained` and by `load_lora_weights`). A parameter another thread creates meanwhile, such as a LoRA layer
of a training that starts while a generation loads an adapter, lands on the meta device, and that training fails
at its first backward pass ("expected device meta but got cpu"). Every place that creates modules or adapter
layers holds this lock, so they never overlap; running models (forward, backward) needs no lock.
"""

from __future__ import annotations

import threading

MODULE_CONSTRUCTION = threading.RLock()
