"""The trainer worker: LoRA adapters trained on training.requested events."""
