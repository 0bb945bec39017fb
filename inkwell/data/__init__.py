"""Data preparation: `inkwell data ingest | clean | redact | augment | split | stats | sample`.

Every command reads and writes JSONL one row at a time (memory grows with the de-duplication indexes, not
with the size of the text), writes its output atomically (`inkwell.home.atomic_write`) and shows progress on
standard error. Rows follow one vocabulary of formats shared with train, eval and batch, and are read by one set
of readers (`formats.py`); the text a row holds - what cleaning, de-duplication and statistics look at -
depends on its schema (`rows.content_text`).

Imports nothing from `generate` or `serve`: LM augmentation receives an engine object from its caller.
"""
