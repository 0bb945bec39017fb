"""`inkwell export`: turn a training run into full Hugging Face weights (--merge) and/or a GGUF file (--gguf).

    inkwell export runs/smollm2-lora-sft --merge --to exports/smollm2-ads          # HF folder: inkwell write --model DIR
    inkwell export runs/smollm2-lora-sft --gguf q8_0 --to exports/smollm2-ads      # DIR/model-q8_0.gguf for llama.cpp
    inkwell export runs/smollm2-lora-sft --gguf f16 --to smollm2-ads.gguf          # just the file

RUN is a folder written by `inkwell train` (inkwell-run.json beside the weights), or any PEFT adapter folder
or Hugging Face model folder. Adapters that change weights (LoRA, DoRA, AdaLoRA, IA3) are merged with PEFT's
merge_and_unload; full-weight runs are copied. Everything is written into a temporary folder beside --to and
renamed into place at the end, so an interrupted export leaves nothing half-written.

models/ sits below train/, so the run card is read here as plain JSON, never through inkwell.train.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.files import read_json
from inkwell.models.gguf_write import GGUF_TYPES, write_gguf
from inkwell.models.heads import load_classifier
from inkwell.models.load import MODEL_CARD, adapter_base, check_hf_folder, read_card, resolve
from inkwell.models.registry import EMBEDDED_MODELS, get_embedded

QUANTIZE_TYPES = ("int8", "int4")  # ONNX Runtime GenAI weight-only quantisation (see inkwell/models/onnx.py)

RUN_CARD = "inkwell-run.json"  # what `inkwell train` writes (inkwell/train/outputs.py)
EXPORT_CARD = "inkwell-export.json"  # written beside a GGUF-only export: what it came from
# PEFT types whose trained weights fold into the base weights. Prefix and prompt tuning add virtual tokens
# to every input instead: there is nothing to fold in, so they stay adapters.
MERGEABLE = ("LORA", "IA3", "ADALORA")
# Files in a run folder that describe the training, not the model: left out of a merged copy.
RUN_ONLY = {RUN_CARD, "metrics.jsonl", "loss.png", "adapter_config.json", "adapter_model.safetensors", "README.md"}


@dataclass
class Run:
    """What is being exported: a run folder (or a bare adapter / model folder) and what its card says."""

    path: Path
    card: dict  # inkwell-run.json; {} for a folder not written by `inkwell train`
    adapter: bool  # a PEFT adapter folder (else full weights: config.json + safetensors)
    peft_type: str | None = None  # LORA, IA3, ADALORA, PREFIX_TUNING, PROMPT_TUNING, ...
    task_type: str | None = None  # CAUSAL_LM, SEQ_CLS, ...

    @property
    def what(self) -> str:
        stage, method = self.card.get("stage"), self.card.get("method")
        if stage and method:
            return f"{stage} {method} run"
        return f"{(self.peft_type or 'adapter').lower()} adapter" if self.adapter else "model"


def open_run(spec: str | os.PathLike) -> Run:
    """Read what RUN is, before anything heavy is loaded; every problem is an InkwellError naming RUN."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise InkwellError(
            f"run folder not found: {path}",
            field="run",
            hint="pass the output folder of `inkwell train` (the one holding inkwell-run.json)",
        )
    if not path.is_dir():
        raise InkwellError(
            f"'{path}' is a file, not a run folder",
            field="run",
            hint="pass the output folder of `inkwell train` (the one holding inkwell-run.json)",
        )
    # a damaged card or adapter config: an error naming file:line, not a traceback
    card = read_json(path / RUN_CARD, field="run") if (path / RUN_CARD).exists() else {}
    if (path / "adapter_config.json").exists():
        adapter_config = read_json(path / "adapter_config.json", field="run")
        return Run(
            path,
            card,
            adapter=True,
            peft_type=str(adapter_config.get("peft_type") or "").upper() or None,
            task_type=adapter_config.get("task_type"),
        )
    if (path / "config.json").exists():
        check_hf_folder(path)
        return Run(path, card, adapter=False)
    raise InkwellError(
        f"'{path}' is not a run folder: it has no {RUN_CARD}, adapter_config.json or config.json",
        field="run",
        hint="pass the output folder of `inkwell train`, a PEFT adapter folder or a Hugging Face model folder",
    )


def check_exportable(run: Run, *, merge: bool, gguf: str | None) -> None:
    """Refuse what cannot be exported, naming the flag and why, before loading any weights."""
    if run.adapter and run.peft_type not in MERGEABLE:
        flag = "--merge" if merge else "--gguf"
        raise InkwellError(
            f"{run.path}: {flag} needs full weights, and this {run.what} ({run.peft_type}) cannot be merged into them: "
            "prefix and prompt tuning add trained virtual tokens to every input instead of changing weights",
            field="merge" if merge else "gguf",
            hint=f"use the adapter as it is: inkwell write --adapter {run.path} (the base model is read from the run)",
        )
    if gguf and (run.card.get("stage") == "classify" or (run.task_type and run.task_type != "CAUSAL_LM")):
        raise InkwellError(
            f"{run.path}: GGUF files hold text-generation models, and this {run.what} is a classifier",
            field="gguf",
            hint="export it with --merge (a Hugging Face folder) instead",
        )
    if run.adapter and run.task_type not in (None, "CAUSAL_LM", "SEQ_CLS"):
        raise InkwellError(
            f"{run.path}: merging {run.task_type} adapters is not supported (only CAUSAL_LM and SEQ_CLS)",
            field="merge",
            hint=f"load it with PEFT: PeftModel.from_pretrained(base, '{run.path}')",
        )
    if run.adapter and run.task_type == "SEQ_CLS" and not run.card.get("labels"):
        raise InkwellError(
            f"{run.path}: a classifier adapter needs its labels, and there is no {RUN_CARD} listing them",
            field="run",
            hint="export the output folder of `inkwell train` (stage: classify)",
        )


# ---------------------------------------------------------------- where the weights came from


def base_of(run: Run) -> str:
    """The base model an adapter was trained on: the resolved folder recorded in the run card, else its spec."""
    recorded = run.card.get("base_model_path")
    if recorded and Path(recorded).exists():
        return recorded
    spec = run.card.get("base_model") or adapter_base(run.path)
    if not spec:
        raise InkwellError(
            f"{run.path}: the adapter does not say which base model it was trained on",
            field="run",
            hint="add base_model_name_or_path to its adapter_config.json",
        )
    return spec


def source_gguf(spec: str | None, depth: int = 0) -> Path | None:
    """The GGUF file a model's weights descend from, followed through model and run cards to an embedded model
    or a .gguf path. Its key/values (architecture, tokenizer) are what llama.cpp expects for these weights."""
    if not spec or depth > 5:
        return None
    if spec in EMBEDDED_MODELS:
        try:
            return get_embedded(spec).gguf_path()
        except InkwellError:  # its package is not installed: build the metadata instead
            return None
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return path if path.exists() else None
    if not path.is_dir():
        return None
    card = read_card(path)
    if card.get("name") in EMBEDDED_MODELS and card.get("source_package"):  # an embedded model's cache folder:
        found = source_gguf(card["name"], depth + 1)  # the installed package's file (the cache may be shared
        if found is not None:  # between environments, each with its own copy)
            return found
    if card.get("source_gguf") and Path(card["source_gguf"]).exists():
        return Path(card["source_gguf"])
    run_card = json.loads((path / RUN_CARD).read_text()) if (path / RUN_CARD).exists() else {}
    return source_gguf(
        card.get("base_model") or run_card.get("base_model") or run_card.get("base_model_path"), depth + 1
    )


# ---------------------------------------------------------------- writing


def _merge_into(run: Run, folder: Path, say: Callable[[str], None]) -> dict:
    """Write full weights for `run` into the empty `folder`; returns the model card of its base."""
    if not run.adapter:
        for item in run.path.iterdir():
            if item.is_file() and item.name not in RUN_ONLY:
                shutil.copy2(item, folder / item.name)
        return read_card(run.path)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base_folder, base_card = resolve(base_of(run), progress=say)
    say(f"merging the {run.what} into {base_folder.name}")
    tokenizer = AutoTokenizer.from_pretrained(base_folder)
    if run.task_type == "SEQ_CLS":
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        model = load_classifier(base_folder, run.card["labels"], pad_id)  # the head the adapter was trained on
    else:
        model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    try:
        model = PeftModel.from_pretrained(model, run.path)
    except Exception as exc:  # PEFT raises many kinds for a base/adapter mismatch
        raise InkwellError(
            f"could not load the adapter {run.path} onto {base_folder}: {exc}",
            field="run",
            hint="the run's base model changed since training; check base_model in inkwell-run.json",
        ) from exc
    merged = model.merge_and_unload()
    merged.save_pretrained(folder)  # config.json, model.safetensors, generation_config.json
    tokenizer.save_pretrained(folder)
    return base_card


def _model_card(run: Run, base_card: dict, name: str) -> dict:
    """inkwell-model.json for the merged folder: what `inkwell write --model DIR` reads (chat or base model)."""
    card = {key: value for key, value in base_card.items() if key in ("chat", "context_length", "languages")}
    card.update(
        name=name, base_model=run.card.get("base_model") or base_card.get("base_model") or base_card.get("name")
    )
    if "chat" in run.card:
        card["chat"] = run.card["chat"]
    if run.card.get("template"):
        card["template"] = run.card["template"]
    card["exported_from"] = _provenance(run)
    return card


def _provenance(run: Run) -> dict:
    return {
        "run": str(run.path.resolve()),
        "stage": run.card.get("stage"),
        "method": run.card.get("method"),
        "weights": "merged adapter" if run.adapter else "full",
        "peft_type": run.peft_type,
        "exported_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def _swap_in(staged: Path, target: Path) -> None:
    """Put `staged` at `target` by renames only; an existing target (--force) is moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staged, target)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() else old.unlink()


def _quantize_into(source: Run, out_dir: Path, precision: str, *, alone: bool, say, to: Path) -> dict:
    """The ONNX Runtime GenAI model of the run at `precision`: `to` itself when it is the only output, else
    `to/onnx-<precision>/`. `inkwell write --model` and `inkwell eval` load that folder on the fast path."""
    from inkwell.models.onnx import build_onnx, read_onnx_card

    if source.card.get("stage") == "classify" or (source.task_type and source.task_type != "CAUSAL_LM"):
        raise InkwellError(
            f"{source.path} is a classifier; --quantize builds text generators",
            field="quantize",
            hint="export it with --merge instead",
        )
    if source.adapter:
        built = build_onnx(base_of(source), adapter=str(source.path), precision=precision, progress=say)
    else:
        built = build_onnx(str(source.path), precision=precision, progress=say)
    target = out_dir if alone else out_dir / f"onnx-{precision}"
    shutil.copytree(built, target, dirs_exist_ok=True)
    card = dict(read_onnx_card(built), exported_from=_provenance(source))
    _write_json(target / "inkwell-onnx.json", card)
    final = to if alone else to / target.name
    return {"path": str(final), "precision": precision, "bytes": _size(target)}


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def export_model(
    run: str | os.PathLike,
    to: str | os.PathLike,
    *,
    merge: bool = False,
    gguf: str | None = None,
    quantize: str | None = None,
    force: bool = False,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Export RUN to `to`. `merge`: full HF weights in the folder `to`; `gguf` (f16 | q8_0): a GGUF file,
    `to/model-<type>.gguf`, or `to` itself when it ends in .gguf. Returns what was written (paths, bytes).
    Each output is one step below; another format (e.g. an int8 inference copy) is one more step."""
    say = say or (lambda _message: None)
    started = time.perf_counter()
    to = Path(to).expanduser()
    as_file = to.suffix == ".gguf"
    if as_file and gguf is None:
        gguf = "f16"  # `--to NAME.gguf` alone says what is wanted
    if gguf is not None and gguf not in GGUF_TYPES:
        raise InkwellError(
            f"unknown GGUF type '{gguf}'", field="gguf", hint=f"use --gguf {' or --gguf '.join(GGUF_TYPES)}"
        )
    if quantize is not None and quantize not in QUANTIZE_TYPES:
        raise InkwellError(
            f"unknown --quantize {quantize!r}",
            field="quantize",
            hint=f"use --quantize {' or --quantize '.join(QUANTIZE_TYPES)}",
        )
    if as_file and quantize:
        raise InkwellError(
            f"--quantize writes a folder, and --to {to} names a .gguf file", field="to", hint="give --to a folder"
        )
    if not merge and gguf is None and quantize is None:
        raise InkwellError(
            "nothing to export: add --merge (Hugging Face folder), --gguf f16|q8_0 (llama.cpp file) "
            "and/or --quantize int8|int4 (ONNX model for the fast CPU path)",
            field="export",
            hint=f"inkwell export {run} --merge --to DIR",
        )
    if as_file and merge:
        raise InkwellError(
            f"--merge writes a folder, and --to {to} names a .gguf file",
            field="to",
            hint="give --to a folder: the GGUF file is then written inside it as model-<type>.gguf",
        )
    source = open_run(run)
    check_exportable(source, merge=merge, gguf=gguf)
    resolved = to.resolve()
    if resolved == source.path.resolve() or resolved in source.path.resolve().parents:
        raise InkwellError(f"--to {to} would replace the run being exported", field="to", hint="choose another --to")
    if to.exists() and not force:
        raise InkwellError(f"{to} already exists", field="to", hint="choose another --to, or add --force to replace it")

    to.parent.mkdir(parents=True, exist_ok=True)
    staged = to.with_name(f".{to.name}.tmp-{os.getpid()}")  # beside --to: the final rename stays on one disk
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir()
    result: dict = {
        "run": str(source.path),
        "what": source.what,
        "to": str(to),
        "merged": None,
        "gguf": None,
        "quantized": None,
    }
    try:
        out_dir = staged if not as_file else staged / "out"
        out_dir.mkdir(exist_ok=True)
        # 1. full weights: the merged folder itself (--merge), or a scratch copy that only feeds the GGUF writer
        hf_folder = source.path
        base_card: dict = read_card(source.path)
        if merge or source.adapter:
            hf_folder = out_dir if merge else staged / "merged"
            hf_folder.mkdir(exist_ok=True)
            base_card = _merge_into(source, hf_folder, say)
        if merge:
            card = _model_card(source, base_card, to.name)
            _write_json(out_dir / MODEL_CARD, card)
            if source.card:  # the run card, now describing full weights (what e.g. a classifier loader reads)
                _write_json(out_dir / RUN_CARD, dict(source.card, weights="full", exported_from=card["exported_from"]))
            result["merged"] = {"path": str(to), "bytes": _size(out_dir)}
        # 2. GGUF for llama.cpp
        if gguf is not None:
            name = f"model-{gguf}.gguf"
            weights_from = source_gguf(base_of(source)) if source.adapter else source_gguf(str(source.path))
            tokenizer_from = source_gguf(source.card.get("tokenizer_from")) or weights_from
            chat = source.card.get("chat", base_card.get("chat", True))  # a base model's GGUF gets no chat template
            report = write_gguf(
                hf_folder,
                out_dir / name,
                gguf,
                source=weights_from,
                tokenizer_source=tokenizer_from,
                name=source.path.name,
                chat=chat is not False,
                say=say,
            )
            final = to if as_file else to / name
            result["gguf"] = dict(report.to_dict(), path=str(final))
            if merge:
                card["gguf"] = result["gguf"]
                _write_json(out_dir / MODEL_CARD, card)
            elif not as_file:
                _write_json(out_dir / EXPORT_CARD, {"exported_from": _provenance(source), "gguf": result["gguf"]})
        # 3. a quantised ONNX model for the fast CPU path (built once in the model cache, copied here)
        if quantize is not None:
            result["quantized"] = _quantize_into(
                source, out_dir, quantize, alone=not merge and gguf is None, say=say, to=to
            )
        # 4. into place, by renames
        if as_file:
            _swap_in(out_dir / name, to)
        else:
            shutil.rmtree(staged / "merged", ignore_errors=True)
            _swap_in(staged, to)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
