"""Training configs: one typed pydantic model per stage, read from YAML plus dotted `key=value` overrides.

    inkwell train configs/smollm2-lora-sft.yaml training.lr=1e-4 lora.r=16

Everything here is checked before a model (or even a tokenizer) is loaded: unknown keys, wrong types,
values outside their choices and combinations that cannot work. Every error names the YAML key (with
the file and line where the key is written) and, for choices, the allowed values.

The stage configs share their parts (`DataSettings`, `TrainingSettings`, method settings); each stage
lists the parts it takes, so a reader sees the whole shape of one stage in one class.
"""

from __future__ import annotations

import difflib
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from inkwell.errors import InkwellError
from inkwell.files import TOO_DEEP, read_text

METHODS = ("full", "freeze", "lora", "adalora", "ia3", "prefix", "prompt")
ADAPTER_METHODS = ("lora", "adalora", "ia3", "prefix", "prompt")  # saved as a PEFT adapter folder
SFT_FORMATS = ("auto", "alpaca", "messages", "prompt_completion", "template", "text")
# Stages we plan but have not built yet: `stage: NAME` then says so instead of "unknown stage".
PLANNED_STAGES: dict[str, str] = {}
# DPO losses TRL 1.16 implements (dpo.loss_type); sigmoid is the DPO paper's.
DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sigmoid_norm",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ---------------------------------------------------------------- model


class FromScratch(_Strict):
    """A small llama-style model with random weights; the tokenizer is borrowed from an existing model."""

    layers: int = Field(4, ge=1)
    hidden: int = Field(256, ge=8)
    heads: int = Field(4, ge=1)
    kv_heads: int | None = Field(None, ge=1)  # None = heads (no grouped-query attention)
    intermediate: int | None = Field(None, ge=8)  # MLP width; None = 4 x hidden
    context: int = Field(512, ge=8)  # max_position_embeddings
    tokenizer_from: str = "smollm2-135m-instruct"  # registry name or HF folder whose tokenizer is reused


class ModelSpec(_Strict):
    """`model: NAME` (registry name, HF folder or .gguf file) or `model: {from_scratch: {...}}`."""

    name: str | None = None
    from_scratch: FromScratch | None = None


# ---------------------------------------------------------------- data


class DataSettings(_Strict):
    train: list[str] = Field(
        min_length=1
    )  # files or folders; relative paths: beside the config, then the current folder
    val: list[str] = Field(default_factory=list)  # held-out files; or use val_split
    val_split: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of training examples held out (seeded)
    format: Literal["auto", "alpaca", "messages", "prompt_completion", "template", "text"] = "auto"
    template: str | None = None  # for format template: a template name or a template YAML file
    on_error: Literal["skip", "error"] = "skip"  # a bad row is skipped and reported, or stops the run

    @field_validator("train", "val", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DataFiles(_Strict):
    """Data of the stages whose rows have one shape: dpo (prompt/chosen/rejected) and classify (text/label)."""

    train: list[str] = Field(
        min_length=1
    )  # files or folders; relative paths: beside the config, then the current folder
    val: list[str] = Field(default_factory=list)  # held-out files; or use val_split
    val_split: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of training examples held out (seeded)
    on_error: Literal["skip", "error"] = "skip"  # a bad row is skipped and reported, or stops the run

    @field_validator("train", "val", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


# ---------------------------------------------------------------- methods


class LoraSettings(_Strict):
    r: int = Field(8, ge=1)  # rank; 8-16 is plenty for style/format tuning of small models
    alpha: float = Field(16, gt=0)  # scale = alpha / r (alpha / sqrt(r) with use_rslora)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    use_rslora: bool = False
    use_dora: bool = False


class AdaLoraSettings(_Strict):
    init_r: int = Field(12, ge=1)  # starting rank of every matrix
    target_r: int = Field(8, ge=1)  # average rank kept after pruning
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None  # None = PEFT's default for the architecture (q_proj, v_proj)
    tinit: int = Field(0, ge=0)  # steps of warm-up before ranks are pruned
    tfinal: int = Field(0, ge=0)  # steps at the end with ranks fixed
    delta_t: int = Field(1, ge=1)  # prune every delta_t steps


class IA3Settings(_Strict):
    target_modules: list[str] | None = None  # None = PEFT's default for the architecture
    feedforward_modules: list[str] | None = None


class FreezeSettings(_Strict):
    trainable_layers: int = Field(2, ge=1)  # the last N transformer blocks (+ final norm) train; the rest is frozen


class VirtualTokenSettings(_Strict):
    num_virtual_tokens: int = Field(16, ge=1)
    init_text: str | None = None  # prompt tuning only: initialise the soft prompt from this text


# ---------------------------------------------------------------- training


class TrainingSettings(_Strict):
    epochs: float = Field(1, gt=0)  # passes over the data; ignored when max_steps is set
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; wins over epochs
    batch_size: int = Field(4, ge=1)  # examples per device per micro-step
    grad_accum: int = Field(1, ge=1)  # micro-steps per optimizer step
    lr: float = Field(2e-4, gt=0)  # 2e-4 suits LoRA; full fine-tuning wants ~1e-5..5e-5
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.0, ge=0.0, lt=1.0)  # sgd only
    weight_decay: float = Field(0.0, ge=0.0)  # never applied to biases and norm weights
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)  # fraction of all steps; use this or warmup_steps
    schedule: Literal["linear", "cosine", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, ge=0.0)  # clip the global grad norm; 0 or null = no clipping
    dropout: float | None = Field(None, ge=0.0, lt=1.0)  # override the model's attention/hidden dropout
    bf16: Literal["auto", "true", "false"] = "auto"  # autocast; auto = on for GPUs and CPUs with fast bf16
    seed: int = 42
    eval_every: int = Field(0, ge=0)  # validate every N steps (0 = only at the end)
    eval_on_start: bool = False  # also validate before the first step (the start of the validation curve)
    early_stopping_patience: int = Field(0, ge=0)  # stop after N validations without improvement (0 = off)
    save_every: int = Field(0, ge=0)  # checkpoint every N steps (0 = no checkpoints, only the final weights)
    keep_last: int = Field(2, ge=1)  # checkpoints kept on disk
    resume: str = "auto"  # auto (latest checkpoint in output, if any) | never | PATH to a checkpoint folder
    neftune_alpha: float = Field(0.0, ge=0.0)  # NEFTune noise on input embeddings (5 is the paper's default; 0 = off)
    adversarial: Literal["none", "fgm", "pgd"] = "none"  # adversarial training on input embeddings
    adversarial_epsilon: float = Field(1.0, gt=0)  # size of the perturbation (L2 per example)
    adversarial_alpha: float = Field(0.3, gt=0)  # PGD step size
    adversarial_steps: int = Field(3, ge=1)  # PGD steps
    packing: bool = False  # SFT: several examples per row, attention kept apart by position_ids
    max_length: int = Field(512, ge=8)  # tokens per example (SFT) or per block (pretrain)
    progress: bool = True  # tqdm bar on the main process
    tensorboard: bool = True  # write TensorBoard event files (loss, lr, tokens/s, val loss) into OUT/tensorboard/
    # Cross-entropy over chunks of N labelled positions, so batch x length x vocabulary logits never exist at
    # once: with Gemma-3's 262k vocabulary they are 1 GB per 1,000 tokens and dominate training memory.
    # auto = on for vocabularies >= 64k (chunks of ~32M logits), 0 = off (the model's own loss).
    loss_chunk_tokens: Literal["auto"] | Annotated[int, Field(ge=0)] = "auto"

    @field_validator("bf16", mode="before")
    @classmethod
    def _bool_words(cls, value: Any) -> Any:
        return str(value).lower() if isinstance(value, bool) else value

    @field_validator("max_grad_norm", mode="after")
    @classmethod
    def _zero_means_off(cls, value: float | None) -> float | None:
        return value or None


# ---------------------------------------------------------------- stages


class _Stage(_Strict):
    """What every stage's config shares besides its fields: where it was read from and the command line, and a
    bare string accepted for `model` (a name or path)."""

    _source: Path | None = PrivateAttr(default=None)  # the YAML file (relative data paths start beside it)
    _command: str = PrivateAttr(default="")

    @field_validator("model", mode="before", check_fields=False)
    @classmethod
    def _name_or_mapping(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class SFTConfig(_Stage):
    """Supervised fine-tuning: loss on the response tokens only."""

    stage: Literal["sft"]
    model: ModelSpec
    output: str | None = None  # default: runs/<config file name> in the current folder
    data: DataSettings
    method: Literal["full", "freeze", "lora", "adalora", "ia3", "prefix", "prompt"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    adalora: AdaLoraSettings = Field(default_factory=AdaLoraSettings)
    ia3: IA3Settings = Field(default_factory=IA3Settings)
    freeze: FreezeSettings = Field(default_factory=FreezeSettings)
    prefix: VirtualTokenSettings = Field(default_factory=VirtualTokenSettings)
    prompt: VirtualTokenSettings = Field(default_factory=VirtualTokenSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)


class PretrainConfig(_Stage):
    """Next-token prediction on raw text packed into fixed blocks (continued pretraining or from scratch)."""

    stage: Literal["pretrain"]
    model: ModelSpec
    output: str | None = None
    data: DataSettings
    method: Literal["full", "freeze", "lora"] = "full"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    freeze: FreezeSettings = Field(default_factory=FreezeSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)


class DPOSettings(_Strict):
    """Direct preference optimisation (Rafailov et al. 2023) as TRL's DPOTrainer implements it."""

    beta: float = Field(0.1, gt=0)  # pull towards the reference model: higher stays closer (0.1 is the paper's value)
    loss_type: Literal[DPO_LOSSES] = "sigmoid"  # sigmoid = the DPO paper; ipo, hinge, robust, ... are TRL's variants
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # robust/exo_pair: assumed share of flipped preferences
    precompute_ref_log_probs: bool = (
        False  # score every pair with the reference once up front (no reference forward per step)
    )


class DPOConfig(_Stage):
    """Preference tuning: raise the likelihood of `chosen` over `rejected` answers, relative to a frozen reference
    (the model before training; for LoRA, the same model with its adapter switched off)."""

    stage: Literal["dpo"]
    model: ModelSpec
    output: str | None = None
    data: DataFiles
    method: Literal["full", "freeze", "lora"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    freeze: FreezeSettings = Field(default_factory=FreezeSettings)
    dpo: DPOSettings = Field(default_factory=DPOSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)


class ClassifyConfig(_Stage):
    """Text classification: a sequence-classification head on a causal LM or an encoder (BERT family), trained on
    {text, label} rows."""

    stage: Literal["classify"]
    model: ModelSpec
    output: str | None = None
    data: DataFiles
    method: Literal["full", "freeze", "lora"] = "lora"  # lora and freeze also train the new `score` head
    lora: LoraSettings = Field(default_factory=LoraSettings)
    freeze: FreezeSettings = Field(default_factory=FreezeSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)


# A plain dict: stage name -> its config class.
STAGES: dict[str, type[BaseModel]] = {
    "pretrain": PretrainConfig,
    "sft": SFTConfig,
    "dpo": DPOConfig,
    "classify": ClassifyConfig,
}
TrainConfig = SFTConfig | PretrainConfig | DPOConfig | ClassifyConfig


# ---------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config, apply `key=value` overrides, validate. Raises InkwellError naming the key."""
    path = Path(path)
    if not path.exists():
        raise InkwellError(f"config file not found: {path}", field="config", hint="see configs/ for examples")
    try:
        text = read_text(path, field="config")  # not UTF-8: an error naming file:line
        data = yaml.safe_load(text)
    except RecursionError:
        raise InkwellError(f"config {path} is not valid YAML: {TOO_DEEP}", field="config") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InkwellError(
            f"config {where} is not valid YAML: {getattr(exc, 'problem', exc)}", field="config"
        ) from None
    if not isinstance(data, dict):
        raise InkwellError(
            f"config {path} must be a mapping of keys (stage, model, data, method, training, ...)", field="config"
        )
    lines = _key_lines(text)
    from_cli: set[str] = set()
    for item in overrides or []:
        key = apply_override(data, item)
        from_cli.add(key)
    config = validate_config(data, where=str(path), lines=lines, from_cli=from_cli)
    config._source = path.resolve()
    config._command = " ".join(["inkwell train", str(path), *(overrides or [])])
    return config


def validate_config(
    data: dict, *, where: str = "config", lines: dict[str, int] | None = None, from_cli: set[str] | None = None
) -> TrainConfig:
    lines, from_cli = lines or {}, from_cli or set()

    def at(key: str) -> str:
        if key in from_cli or any(key.startswith(k + ".") for k in from_cli):
            return f"{where} (command line)"
        parts = key.split(".") if key else []
        while parts:  # the key itself, else the nearest section it belongs to
            line = lines.get(".".join(parts))
            if line:
                return f"{where}:{line}"
            parts.pop()
        return where

    stage = data.get("stage")
    if stage is None:
        raise InkwellError(
            f"{at('')}: stage: is required; one of {', '.join(STAGES)}",
            field="stage",
            hint="add `stage: sft` (or pretrain, dpo, classify) at the top of the config",
        )
    if stage in PLANNED_STAGES:
        raise InkwellError(
            f"{at('stage')}: stage: {PLANNED_STAGES[stage]}", field="stage", hint=f"use one of: {', '.join(STAGES)}"
        )
    if stage not in STAGES:
        raise InkwellError(f"{at('stage')}: stage: must be one of {', '.join(STAGES)}, got {stage!r}", field="stage")
    cls = STAGES[stage]
    try:
        config = cls.model_validate(data)
    except ValidationError as exc:
        grouped: dict[str, list[str]] = {}
        for err in exc.errors():
            key, message = _describe(cls, err)
            grouped.setdefault(key, []).append(message)
        # a union (e.g. a list of names or 'all-linear') fails once per branch: one line, branches joined by "or"
        lines = [
            f"  {at(key)}: {key}: "
            + " or ".join(re.sub(r" \(got .*\)$", "", m) for m in messages[:-1])
            + (" or " if len(messages) > 1 else "")
            + messages[-1]
            for key, messages in grouped.items()
        ]
        raise InkwellError("invalid training config:\n" + "\n".join(lines), field=next(iter(grouped))) from None
    for key, message in cross_checks(config):
        raise InkwellError(f"invalid training config:\n  {at(key)}: {key}: {message}", field=key)
    return config


def cross_checks(config: TrainConfig) -> list[tuple[str, str]]:
    """Rules that tie several keys together. Returns (key, message) pairs; empty when all is well."""
    problems: list[tuple[str, str]] = []
    t, data, model = config.training, config.data, config.model
    if (model.name is None) == (model.from_scratch is None):
        problems.append(
            (
                "model",
                "give a model name/folder/.gguf, or model.from_scratch: {layers, hidden, heads, context, tokenizer_from}, not both",
            )
        )
    if model.from_scratch is not None:
        fs = model.from_scratch
        if config.stage != "pretrain":
            problems.append(("model.from_scratch", "a model from scratch can only be pretrained (stage: pretrain)"))
        if config.method != "full":
            problems.append(("method", f"must be full for a model from scratch, got {config.method!r}"))
        if fs.hidden % fs.heads:
            problems.append(("model.from_scratch.hidden", f"must be a multiple of heads ({fs.heads}), got {fs.hidden}"))
        if fs.kv_heads and fs.heads % fs.kv_heads:
            problems.append(("model.from_scratch.kv_heads", f"must divide heads ({fs.heads}), got {fs.kv_heads}"))
    if t.warmup_steps and t.warmup_ratio:
        problems.append(("training.warmup_steps", "set warmup_steps or warmup_ratio, not both"))
    if data.val and data.val_split:
        problems.append(("data.val_split", "set data.val (files) or data.val_split (a fraction), not both"))
    has_val = bool(data.val or data.val_split)
    if t.early_stopping_patience and not has_val:
        problems.append(("training.early_stopping_patience", "needs validation data: set data.val or data.val_split"))
    if t.early_stopping_patience and not t.eval_every:
        problems.append(
            ("training.early_stopping_patience", "needs training.eval_every > 0 to validate during training")
        )
    if t.resume not in ("auto", "never") and not t.resume.strip():
        problems.append(("training.resume", "must be auto, never or a checkpoint folder"))
    if t.optimizer != "sgd" and t.momentum:
        problems.append(("training.momentum", "only applies to optimizer: sgd"))
    if config.stage == "pretrain":
        if data.format not in ("auto", "text"):
            problems.append(("data.format", f"pretrain reads raw text: must be auto or text, got {data.format!r}"))
        if t.packing:
            problems.append(
                ("training.packing", "pretrain always packs text into blocks of max_length; remove this key")
            )
    if config.stage in ("dpo", "classify"):
        if t.packing:
            problems.append(("training.packing", f"the {config.stage} stage batches whole examples; remove this key"))
        if t.adversarial != "none":
            problems.append(
                ("training.adversarial", f"FGM/PGD are not available in the {config.stage} stage; use none")
            )
    if config.stage == "dpo" and config.dpo.loss_type == "exo_pair" and not config.dpo.label_smoothing:
        problems.append(("dpo.label_smoothing", "exo_pair needs label_smoothing > 0 (the EXO paper uses 1e-3)"))
    if config.stage == "sft":
        if t.packing and config.method in ("prefix", "prompt"):
            problems.append(
                (
                    "training.packing",
                    f"cannot be used with method {config.method}: virtual tokens need an attention mask per example",
                )
            )
        if config.method == "adalora" and config.adalora.target_r > config.adalora.init_r:
            problems.append(("adalora.target_r", f"must be <= adalora.init_r ({config.adalora.init_r})"))
        if config.method == "prefix" and config.prefix.init_text:
            problems.append(("prefix.init_text", "only prompt tuning (method: prompt) starts from text"))
    return problems


# ---------------------------------------------------------------- overrides


def apply_override(data: dict, item: str) -> str:
    """Apply one `a.b.c=value` to the nested dict (the value is parsed as YAML: 3, 1e-4, true, [a, b])."""
    if "=" not in item:
        raise InkwellError(
            f"override '{item}' must look like key=value",
            field="override",
            hint="e.g. training.lr=1e-4 lora.r=16 data.train=my.jsonl",
        )
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise InkwellError(f"override '{item}': '{key}' is not a dotted key", field="override")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):
        value = raw
    value = _number(value)
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            if depth == 0 and part == "model" and isinstance(child, str):
                child = node[part] = {"name": child}
            else:
                here = ".".join(parts[: depth + 1])
                raise InkwellError(f"override '{item}': {here} is {child!r}, not a section with keys", field=here)
        node = child
    node[parts[-1]] = value
    return key


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` as a string; we read it as the number everyone means."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") and value.strip() else value
        except ValueError:
            return value
    return value


# ---------------------------------------------------------------- error messages


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _describe(cls: type[BaseModel], err: dict) -> tuple[str, str]:
    # pydantic adds type tags (list[str], literal['all-linear'], function-before[...]) to the location of
    # union and validator errors; the user only knows the keys and list positions.
    loc = [
        str(p)
        for p in err["loc"]
        if isinstance(p, int) or (re.fullmatch(r"[a-z_][a-z0-9_]*", str(p)) and str(p) not in _TYPE_TAGS)
    ]
    key = ".".join(loc)
    kind, got = err["type"], err.get("input")
    if kind == "extra_forbidden":
        parent_key, name = ".".join(loc[:-1]), loc[-1]
        known = _known_keys(cls, loc[:-1])
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        where = f"keys of {parent_key}" if parent_key else "top-level keys"
        guess = f"did you mean '{close[0]}'? " if close else ""
        return key, f"unknown key; {guess}{where}: {', '.join(known)}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = [c.strip().strip("'") for c in expected.replace(" or ", ", ").split(",") if c.strip()]
        return key, f"must be one of {', '.join(choices)} (got {got!r})"
    if kind == "missing":
        return key, "is required"
    message = err["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    if got is not None and not isinstance(got, dict):
        message += f" (got {got!r})"
    return key, message


def _known_keys(cls: type[BaseModel], loc: list[str]) -> list[str]:
    model: Any = cls
    for part in loc:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted keys to the line they are written on, so errors can say config.yaml:12."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    found: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                found[key] = key_node.start_mark.line + 1
                walk(value_node, key + ".")

    walk(root, "")
    return found


def config_dict(config: TrainConfig) -> dict:
    """The fully resolved config (defaults filled in), as written to inkwell-run.json."""
    return config.model_dump(mode="json")
