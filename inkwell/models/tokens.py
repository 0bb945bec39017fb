"""Counting tokens with a model's own tokenizer, without loading the model (`inkwell data stats --tokenizer`)."""

from __future__ import annotations

from collections.abc import Callable


def token_counter(spec: str, progress: Callable[[str], None] | None = None) -> Callable[[str], int]:
    """A function giving the number of tokens of a text (special tokens left out) for the model `spec`
    names: a registry name or a folder (an embedded model is prepared first, with `progress`)."""
    from transformers import AutoTokenizer

    from inkwell.models.load import resolve

    folder, _card = resolve(spec, progress=progress)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
