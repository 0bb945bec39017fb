"""Loading a model with a sequence-classification head (the `classify` stage's model): one loader for training,
inference (generate/classify.py) and export (models/export.py), so all three build the same head."""

from __future__ import annotations

from pathlib import Path


def load_classifier(folder: str | Path, labels: list[str], pad_id: int, **overrides):
    """AutoModelForSequenceClassification from a model folder (a causal LM: its new `score` head starts random;
    an encoder such as BERT: its new `classifier` head on the pooled [CLS] token; a trained full run: the head
    as trained), fp32, with our labels and pad token. `overrides` go to
    from_pretrained (training sets dropout there)."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar for a small model
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "score is newly initialised, lm_head unused": expected, not for users
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            folder,
            dtype=torch.float32,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            pad_token_id=pad_id,
            **overrides,
        )
    finally:
        hf_logging.set_verbosity(verbosity)
