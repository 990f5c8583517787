"""The byte-level tokenizer every built-in tiny base model uses: any trigger word gets its own tokens, nothing to
download."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<|startoftext|>", "<|endoftext|>", "<pad>"


def byte_level_tokenizer(max_tokens: int, *, with_bos: bool = True) -> PreTrainedTokenizerFast:
    """One token per byte, CLIP's start and end markers around each prompt (or, `with_bos=False`, T5's shape:
    the end marker only, and a padding token of its own), at most `max_tokens` tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    # tiny-sd's vocabulary (and so its seeded weights) predates the T5 shape: the padding token is T5's alone.
    for special in (BOS, EOS) if with_bos else (BOS, EOS, PAD):
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    if with_bos:
        core.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=EOS, model_max_length=max_tokens
        )
    core.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, vocab[EOS])])
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD, model_max_length=max_tokens)
