"""A tiny BLIP image-to-text model (random weights, a word-list tokenizer), saved as an operator's captioning model
folder would be: for the automatic-captioning tests, in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import torch

CAPTION_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "photo", "of", "cat", "dog", "on", "sofa", "red"]


def build_tiny_blip(folder: Path) -> Path:
    """Save a tiny BlipForConditionalGeneration and its processor into `folder` (deterministic weights)."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = BertTokenizerFast(vocab={word: index for index, word in enumerate(CAPTION_WORDS)})
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = BlipConfig(
        text_config=dict(
            small, vocab_size=len(CAPTION_WORDS), max_position_embeddings=64, bos_token_id=2, sep_token_id=3
        ),
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=32,
    )
    torch.manual_seed(0)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
