"""Rewriting texts with a model (paraphrase, back-translation through English/Chinese): the generation half of
`inkwell data augment`, which data/augment.py calls through the `rewrite` function it is given.

    rewrite = partial(lm_rewrite, engine, max_new_tokens=256)
    augment_file(src, out, method="paraphrase", rewrite=rewrite)
"""

from __future__ import annotations

import re
from typing import Any

from inkwell.data.text import detect_language
from inkwell.errors import InkwellError
from inkwell.generate.settings import GenerationSettings


def _lang_name(code: str) -> str:
    return {"zh": "Chinese", "en": "English"}.get(code, "the original language")


def _prompt(engine, instruction: str, text: str) -> Any:
    if engine.loaded.chat:
        return [{"role": "user", "content": f"{instruction}\n\n{text}"}]
    return f"{instruction}\n\nText: {text}\nAnswer:"


def _clean_output(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return re.sub(r"^(?:paraphrase|rewritten text|translation|answer)\s*[:：]\s*", "", text, flags=re.I)


def lm_rewrite(
    engine, texts: list[str], method: str, *, max_new_tokens: int = 256, temperature: float = 0.7, seed: int | None = 0
) -> list[str | None]:
    """Rewrite each text with the model; None where the model gave nothing usable (empty, or the same text)."""
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stop=[] if engine.loaded.chat else ["\n\n"]
    )

    def run(instructions: list[str], inputs: list[str]) -> list[str]:
        prompts = [_prompt(engine, ins, txt) for ins, txt in zip(instructions, inputs)]
        return [_clean_output(r.text) for r in engine.generate(prompts, settings)]

    if method == "paraphrase":
        outputs = run(
            [
                "Rewrite the following text in different words. Keep its meaning, its language and about "
                "its length. Reply with the rewritten text only."
            ]
            * len(texts),
            texts,
        )
    elif method == "back-translate":
        langs = [detect_language(t) for t in texts]
        pivots = ["en" if lang == "zh" else "zh" for lang in langs]
        middle = run(
            [f"Translate the following text into {_lang_name(p)}. Reply with the translation only." for p in pivots],
            texts,
        )
        outputs = run(
            [
                f"Translate the following text into {_lang_name(lang)}. Reply with the translation only."
                for lang in langs
            ],
            middle,
        )
    else:
        raise InkwellError(f"unknown LM method '{method}'", field="method", hint="paraphrase or back-translate")
    return [o if o and o.strip().casefold() != t.strip().casefold() else None for o, t in zip(outputs, texts)]
