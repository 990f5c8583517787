"""LoRA adapter files without torch: reading and checking a safetensors file's header and tensors, the key namings
(diffusers, peft, kohya) of each model family, converting between them, and the base models' layer manifests the
checks compare against. The API (in Lambda, where there is no torch) checks imports and converts downloads with it;
the workers use the same code.

Modules:
- `errors.py`: `AdapterFileError`, the one error a refused file raises (a stable code and a message naming the
  problem).
- `safetensors_file.py`: read a header (or only the bytes it needs: `header_bytes_needed`), read tensors as numpy
  (BF16 as raw bits), write a file.
- `checks.py`: `check_adapter(data, spec, limits, file_size) -> AdapterSummary` from a header alone.
- `convert.py`: `to_diffusers(data, spec, limits) -> bytes`, `to_kohya(data, spec, KohyaMetadata) -> bytes`.
- `scales.py`: each layer's alpha / rank, from kohya's alpha tensors or diffusers' `lora_adapter_metadata`, checked.
- `kohya_metadata.py`: `KohyaMetadata`, the `ss_*` fields and sd-scripts' hashes.
"""
