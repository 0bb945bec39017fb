"""Run a trained text classifier: load the output folder of a `stage: classify` run and label texts. The base is a
causal LM (SmolLM2: a `score` head on its last token) or an encoder (BERT family such as all-MiniLM-L6-v2: a
`classifier` head on its pooled [CLS] token); the same code loads both.

    inkwell classify --model runs/smollm2-classify "Cheese -- milk's leap toward immortality."

    from inkwell.generate.classify import Classifier
    Classifier.load("runs/smollm2-classify").predict(["text", ...])

The run card (inkwell-run.json) says which labels the head has and whether the folder holds full weights
(full / freeze) or a PEFT adapter over the base model (lora, whose `score` head is saved with the adapter).
This is the inference side only: the classify recipe (train/classify.py) builds its model with
`models.heads.load_classifier` and its batches with `pad_right` from here, so training and inference pool the same token.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError
from inkwell.models.heads import load_classifier

RUN_CARD = "inkwell-run.json"  # what `inkwell train` writes beside the weights


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors. Right padding: the classification head pools the last token that is
    not padding (it finds it from the pad token id set in the model config)."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        ids[i, : len(sequence)] = torch.tensor(sequence)
        mask[i, : len(sequence)] = 1
    return ids, mask


def classifier_tokenizer(folder: Path):
    """The tokenizer, with pad = eos when it has none (causal LMs; encoders such as BERT bring their own [PAD]).
    Training and inference both load it here, so the pad id the head pools by is the same."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token_id is None:
        raise InkwellError(
            f"the tokenizer in {folder} has neither a padding nor an end-of-text token",
            field="model",
            hint="use a model whose tokenizer defines pad_token or eos_token",
        )
    return tokenizer


class Classifier:
    """A trained classify run, loaded for use: `Classifier.load(OUT).predict(["text", ...])`."""

    def __init__(self, model, tokenizer, labels: list[str], max_length: int, device):
        self.model, self.tokenizer, self.labels, self.max_length, self.device = (
            model,
            tokenizer,
            labels,
            max_length,
            device,
        )

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto") -> Classifier:
        import torch

        from inkwell.models.load import resolve

        run_dir = Path(run_dir).expanduser()
        card_path = run_dir / RUN_CARD
        if not card_path.exists():
            raise InkwellError(
                f"'{run_dir}' is not a training run folder ({RUN_CARD} is missing)",
                field="model",
                hint="point --model at the output folder of `inkwell train` with stage: classify",
            )
        card = json.loads(card_path.read_text(encoding="utf-8"))
        if card.get("stage") != "classify":
            raise InkwellError(
                f"'{run_dir}' holds a {card.get('stage')} run, not a classifier",
                field="model",
                hint="train one with a `stage: classify` config (see configs/smollm2-classify.yaml)",
            )
        labels = card["labels"]
        if card.get("weights") == "full":
            tokenizer = classifier_tokenizer(run_dir)
            model = load_classifier(run_dir, labels, tokenizer.pad_token_id)
        else:
            from peft import PeftModel

            base = (
                Path(card["base_model_path"])
                if card.get("base_model_path") and Path(card["base_model_path"]).exists()
                else resolve(card["base_model"])[0]
            )
            tokenizer = classifier_tokenizer(base)
            with warnings.catch_warnings():  # PEFT calls a transformers property deprecated in v5: noise for users
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(load_classifier(base, labels, tokenizer.pad_token_id), run_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model.to(device).eval()
        return cls(model, tokenizer, labels, int(card.get("max_length") or 512), device)

    def predict(self, texts: list[str], batch_size: int = 16) -> list[dict]:
        """[{"label", "probability", "probabilities": {label: p}}] per text, in order."""
        import torch

        results = []
        pad_id = self.tokenizer.pad_token_id
        for start in range(0, len(texts), batch_size):
            ids, mask = pad_right(
                [
                    self.tokenizer(text, add_special_tokens=True, truncation=True, max_length=self.max_length)[
                        "input_ids"
                    ]
                    or [pad_id]
                    for text in texts[start : start + batch_size]
                ],
                pad_id,
            )
            with torch.no_grad():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
            for row in logits.float().softmax(-1).tolist():
                best = max(range(len(row)), key=row.__getitem__)
                results.append(
                    {
                        "label": self.labels[best],
                        "probability": round(row[best], 6),
                        "probabilities": {label: round(p, 6) for label, p in zip(self.labels, row)},
                    }
                )
        return results
