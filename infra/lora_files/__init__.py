"""LoRA adapter files without torch: reading and checking a safetensors file's header and tensors, the key namings
(diffusers, peft, kohya) of each model family, converting between them, and the base models' layer manifests the
checks compare against. The API (in Lambda, where there is no torch) checks imports and converts downloads with it;
the workers use the same code.

Modules:
- `errors.py`: `AdapterFileError`, the one error a refused file raises (a stable code and a message naming the
  problem).
"""
