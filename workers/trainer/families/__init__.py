"""What differs between the model families a LoRA trains on (SD 1.5, SDXL, FLUX.1): one module each, behind the
`TrainingFamily` protocol the training loop drives."""
