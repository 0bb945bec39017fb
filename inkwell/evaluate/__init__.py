"""Evaluation: metric functions (predictions, references -> numbers), the `inkwell eval` runner that compares
systems on the same rows, `inkwell score` for outputs from any tool, human ratings and the report writer.

Layout: `text` (tokenising, language), `metrics` (the registry of pure metric functions), `stats` (bootstrap
confidence intervals), `perplexity`, `memorisation` (copied spans against a training corpus), `semantic`
(sentence-embedding similarity), `data` (reading rows, system specs), `runner`, `report`, `rate`, and `suite`
(`eval --suite content`: fixed tasks scored by compose/checks.py).
"""
