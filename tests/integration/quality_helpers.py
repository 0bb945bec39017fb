"""The quantised paths' quality guard, shared by the ONNX and native integration tests: perplexity on a fixed
text within 3% of the full-precision model."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def fixed_text() -> str:
    """Real English text shipped with the repository: the Debian fortune quotes of the classify demo data."""
    rows = [json.loads(line) for line in (ROOT / "configs/data/fortune-topics.jsonl").read_text().splitlines()[:120]]
    return "\n\n".join(row["text"] for row in rows)


def assert_perplexity_within_3_percent(full, fast, text: str, label: str) -> float:
    """Score `text` with the full-precision engine and the fast one (same tokens); returns the relative change."""
    from inkwell.evaluate.perplexity import perplexity

    reference = perplexity(full, full.tokenizer, [text], max_length=512)
    quant = perplexity(fast, fast.tokenizer, [text], max_length=512)
    assert reference.tokens == quant.tokens > 1000
    change = quant.perplexity / reference.perplexity - 1
    print(f"perplexity fp32 {reference.perplexity:.3f}  {label} {quant.perplexity:.3f}  change {change:+.2%}")
    assert abs(change) < 0.03
    return change
