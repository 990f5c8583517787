"""What each training image is trained on: its caption with the model's trigger word woven in. Pure."""

from __future__ import annotations

import re

# A caption may say where the trigger word goes (kohya's and ai-toolkit's convention).
TRIGGER_PLACEHOLDER = "[trigger]"


def training_prompt(caption: str | None, trigger_word: str, concept_prompt: str) -> str:
    """The prompt an image trains on: without a caption, the concept prompt; a caption that names the trigger word
    (or holds `[trigger]`, replaced by it) as it is; any other caption after the trigger word (`"TOK, a cat on a
    sofa"`), so the word is learned with every image whatever its caption says."""
    if caption is None or not caption.strip():
        return concept_prompt
    caption = caption.strip()
    if TRIGGER_PLACEHOLDER in caption:
        return caption.replace(TRIGGER_PLACEHOLDER, trigger_word)
    if re.search(rf"(?<!\w){re.escape(trigger_word)}(?!\w)", caption, flags=re.IGNORECASE):
        return caption
    return f"{trigger_word}, {caption}"
