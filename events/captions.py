"""What each training image is trained on: its caption with the model's trigger word woven in. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A caption may say where the trigger word goes (kohya's and ai-toolkit's convention).
TRIGGER_PLACEHOLDER = "[trigger]"


def places_trigger(captions: Iterable[str | None]) -> bool:
    """Whether a training set's captions say where the trigger word goes (one of them holds `[trigger]`): then a
    caption without it is trained as written, as kohya trains its captions."""
    return any(caption is not None and TRIGGER_PLACEHOLDER in caption for caption in captions)


def training_prompt(caption: str | None, trigger_word: str, concept_prompt: str, as_written: bool = False) -> str:
    """The prompt an image trains on: without a caption, the concept prompt; a caption that names the trigger word
    (or holds `[trigger]`, replaced by it) as it is; any other caption after the trigger word (`"TOK, a cat on a
    sofa"`), so the word is learned with every image whatever its caption says, unless `as_written` (the set places
    its trigger word, see `places_trigger`).

    `as_written` is how a set carries regularisation pictures (DreamBooth's prior preservation, kohya's "reg"
    folder): pictures of what the base model already draws, captioned in its own words and trained without the
    trigger word, so the adapter learns the new concept under the word alone instead of redrawing everything."""
    if caption is None or not caption.strip():
        return concept_prompt
    caption = caption.strip()
    if TRIGGER_PLACEHOLDER in caption:
        return caption.replace(TRIGGER_PLACEHOLDER, trigger_word)
    if as_written or re.search(rf"(?<!\w){re.escape(trigger_word)}(?!\w)", caption, flags=re.IGNORECASE):
        return caption
    return f"{trigger_word}, {caption}"
