"""Decoding settings: one typed dataclass shared by the CLI, batch jobs and the server."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from inkwell.errors import InkwellError

MIN_DIVISOR = 0.001  # the smallest temperature (other than 0) and repetition_penalty: see validate
# The largest seed: well inside a signed 64-bit integer (torch's generators, the SQLite history) with room for the
# offsets added per sample and per retry (a larger one failed the request with a 500 in the schema fuzzing).
MAX_SEED = 2**62


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    min_new_tokens: int = 0
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9
    top_k: int = 50  # 0 disables top-k
    repetition_penalty: float = 1.1  # 1.0 disables; small models loop without a little
    no_repeat_ngram_size: int = 0
    num_beams: int = 1
    num_return_sequences: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None  # same seed + same prompt + same settings -> same text
    # Constrained decoding (generate/grammar.py): {"json_schema": {...}} | {"regex": "..."} | {"choices": [...]}
    # | {"lark": "..."} | {"json": true}; per row, so rows with different grammars share a continuous batch
    grammar: dict | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def bad(name: str, value, rule: str) -> InkwellError:
            return InkwellError(f"invalid setting {name}={value!r}: {rule}", field=name, hint=f"set {name} {rule}")

        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise bad("max_new_tokens", self.max_new_tokens, "to a whole number >= 1")
        if not isinstance(self.min_new_tokens, int) or not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise bad("min_new_tokens", self.min_new_tokens, f"between 0 and max_new_tokens ({self.max_new_tokens})")
        # Logits are divided by temperature and repetition_penalty: below MIN_DIVISOR they overflow to inf and
        # sampling fails (found by the schema fuzzing of tests/reliability: 5e-324 failed a whole served batch).
        if not (float(self.temperature) == 0 or MIN_DIVISOR <= float(self.temperature) <= 5):
            raise bad("temperature", self.temperature, f"to 0 (greedy) or between {MIN_DIVISOR} and 5")
        if not 0 < float(self.top_p) <= 1:
            raise bad("top_p", self.top_p, "in (0, 1]")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise bad("top_k", self.top_k, "to a whole number >= 0 (0 disables)")
        if not MIN_DIVISOR <= float(self.repetition_penalty) <= 10:
            raise bad("repetition_penalty", self.repetition_penalty, f"between {MIN_DIVISOR} and 10; 1.0 disables")
        if not isinstance(self.no_repeat_ngram_size, int) or self.no_repeat_ngram_size < 0:
            raise bad("no_repeat_ngram_size", self.no_repeat_ngram_size, "to a whole number >= 0")
        if not isinstance(self.num_beams, int) or not 1 <= self.num_beams <= 16:
            raise bad("num_beams", self.num_beams, "between 1 and 16")
        if not isinstance(self.num_return_sequences, int) or not 1 <= self.num_return_sequences <= 64:
            raise bad("num_return_sequences", self.num_return_sequences, "between 1 and 64")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise bad("num_return_sequences", self.num_return_sequences, f"<= num_beams ({self.num_beams})")
        if not isinstance(self.stop, list) or not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", self.stop, "to a list of non-empty strings")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED):
            raise bad("seed", self.seed, f"to a whole number between 0 and {MAX_SEED}")
        if self.grammar is not None:
            from inkwell.generate.grammar import check_grammar

            check_grammar(self.grammar)
            if self.num_beams > 1:
                raise bad("num_beams", self.num_beams, "to 1 with a grammar (constrained decoding samples one path)")

    @property
    def greedy(self) -> bool:
        return float(self.temperature) == 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self, samples: int, eos_ids, pad_id: int, decoder_start: int | None = None):
        """transformers' GenerationConfig for these settings (the torch engine's `generate` paths: beams, prefix
        adapters, seq2seq models, whose decoder starts from `decoder_start`)."""
        from transformers import GenerationConfig

        sampled = not self.greedy
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=self.min_new_tokens or None,
            do_sample=sampled,
            temperature=float(self.temperature) if sampled else None,
            top_p=float(self.top_p) if sampled else None,
            top_k=self.top_k if sampled else None,
            repetition_penalty=float(self.repetition_penalty),
            no_repeat_ngram_size=self.no_repeat_ngram_size or None,
            num_beams=self.num_beams,
            num_return_sequences=samples,
            eos_token_id=sorted(eos_ids),
            pad_token_id=pad_id,
            decoder_start_token_id=decoder_start,
            stop_strings=self.stop or None,
        )

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def build(cls, *layers: dict | None) -> GenerationSettings:
        """Merge layers left to right (template defaults, then user flags); None values are skipped.
        Unknown keys are an error naming the closest valid key."""
        import difflib

        merged: dict = {}
        valid = set(cls.names())
        for layer in layers:
            for key, value in (layer or {}).items():
                if value is None:
                    continue
                if key not in valid:
                    close = difflib.get_close_matches(key, sorted(valid), n=1)
                    hint = f"did you mean '{close[0]}'?" if close else f"valid settings: {', '.join(sorted(valid))}"
                    raise InkwellError(f"unknown generation setting '{key}'", field=key, hint=hint)
                if key == "stop":  # one string is one stop sequence (list("###") would split it into chars)
                    value = (
                        [value]
                        if isinstance(value, str)
                        else list(value)
                        if isinstance(value, (list, tuple))
                        else value
                    )
                merged[key] = value
        return cls(**merged)
