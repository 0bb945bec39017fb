"""The training loop every stage shares: one visible loop in plain PyTorch + accelerate.

The same code runs on a CPU, one GPU, and several processes under `accelerate launch` or `torchrun`
(accelerate's `Accelerator` wraps the model in DDP and picks gloo/nccl; we shard the batches ourselves so
the data order is a pure function of (seed, epoch) and a resumed run sees exactly the batches it missed).

One optimizer step = `grad_accum` micro-batches per process. The loss is the mean over every response
token of the whole step, across micro-batches and processes (the token count is summed first and passed
to the model as `num_items_in_batch`), so accumulating 2 x batch 1 gives the gradient of batch 2.

The loss comes from `losses.build_loss`: the model's own, or for large vocabularies (Gemma-3's 262k) the
same cross-entropy computed in chunks so the full logits never exist. A stage that learns something else
passes its own loss, batch collation and validation scores (classify: a cross-entropy per example, mean
over the examples of the step, and accuracy / macro F1 beside the validation loss).

Also here: AdamW/SGD with weight decay off for biases and norms, transformers' `get_scheduler` for
warm-up + linear/cosine/constant, gradient clipping, bf16 autocast, validation every N steps (and before
the first with eval_on_start), early stopping, atomic checkpoints (keep the last K) with exact resume,
NEFTune and FGM/PGD on the input embeddings, a tqdm bar, metrics.jsonl, TensorBoard events and a loss plot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inkwell.data.formats import read_jsonl
from inkwell.errors import InkwellError
from inkwell.home import atomic_write
from inkwell.train.collate import collate, epoch_batches

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
PLOT = "loss.png"
TENSORBOARD = "tensorboard"


@dataclass
class LoopState:
    """Where training is; saved in every checkpoint so a resumed run picks up at the same batch."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    window: int = 0  # optimizer steps done inside the current epoch
    tokens: int = 0  # input tokens seen (all processes)
    best_val: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # validations in a row without improvement (early stopping)
    stopped: str = ""  # why training ended: max_steps | early_stopping


@dataclass
class LoopResult:
    model: Any  # the trained model, unwrapped (no DDP, no autocast wrapper): ready to save
    state: LoopState
    records: list[dict]  # the metrics.jsonl lines of this run (including resumed history)
    total_steps: int
    seconds: float

    @property
    def final(self) -> dict:
        losses = [r["loss"] for r in self.records if "loss" in r]
        vals = [r["val_loss"] for r in self.records if "val_loss" in r]
        return {
            "steps": self.state.step,
            "train_loss": losses[-1] if losses else None,
            "val_loss": vals[-1] if vals else None,
            "best_val_loss": self.state.best_val,
            "best_step": self.state.best_step,
            "tokens": self.state.tokens,
            "stopped": self.state.stopped,
            "seconds": round(self.seconds, 2),
        }


# ---------------------------------------------------------------- set-up


def use_bf16(setting: str) -> bool:
    import torch

    from inkwell.models.load import cpu_has_fast_bf16

    if setting == "false":
        return False
    if setting == "true":
        return True
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()  # bf16 on CPUs without AVX512-BF16/AMX is far slower than fp32


def make_accelerator(bf16: str):
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # One process may run several trainings (tests, notebooks): let each choose its own precision.
    AcceleratorState._reset_state()
    # cpu=True without a CUDA GPU: accelerate only sets up multi-process CPU training (gloo) under
    # torchrun when told the run is on CPU; otherwise each process would train alone.
    return Accelerator(mixed_precision="bf16" if use_bf16(bf16) else "no", cpu=not torch.cuda.is_available())


def precision_of(accelerator) -> str:
    """What the run trained in, for its card: "bf16" (autocast over fp32 master weights) or "fp32"."""
    return "bf16" if accelerator.mixed_precision == "bf16" else "fp32"


def plan_steps(n_examples: int, t, world: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps): max_steps wins over epochs."""
    micro = math.ceil(n_examples / (t.batch_size * world))
    per_epoch = max(1, math.ceil(micro / t.grad_accum))
    return per_epoch, t.max_steps or max(1, math.ceil(t.epochs * per_epoch))


def build_optimizer(model, t):
    """Weight decay on matrices only: decaying biases and norm gains hurts and is not what papers do."""
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise InkwellError("nothing to train: every weight is frozen", field="method")
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum)
    return torch.optim.AdamW(groups, lr=t.lr)


def build_scheduler(optimizer, t, total_steps: int):
    from transformers import get_scheduler

    warmup = t.warmup_steps or int(round(t.warmup_ratio * total_steps))
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[t.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


# ---------------------------------------------------------------- embedding noise and attacks


def activate_neftune(embeddings, alpha: float):
    """NEFTune (Jain et al. 2023): uniform noise of size alpha / sqrt(seq_len * dim) on the input
    embeddings, in training mode only. We use transformers' own hook (integrations.neftune), the one its
    Trainer and TRL use; note it scales by the padded length. Returns the hook handle (call .remove())."""
    from transformers.integrations.neftune import neftune_post_forward_hook

    embeddings.neftune_noise_alpha = alpha
    return embeddings.register_forward_hook(neftune_post_forward_hook)


class EmbeddingAttack:
    """FGM (Miyato et al. 2017) and PGD (Madry et al. 2018) adversarial training on the input embeddings.

    No library ships FGM/PGD for Hugging Face causal LMs (not transformers, accelerate, PEFT or TRL), so
    this is a small hook of our own. A forward hook adds a perturbation `delta` to the embedding output:
    the clean pass records d(loss)/d(delta); FGM then takes one step of size epsilon along that gradient
    (L2-normalised per example), PGD takes `steps` steps of size alpha projected back into the epsilon
    ball; the loss at the perturbed embeddings is backpropagated on top of the clean gradients. Works for
    frozen embeddings (LoRA) too, because delta itself requires grad.
    """

    def __init__(self, embeddings, kind: str, epsilon: float, alpha: float, steps: int):
        self.kind, self.epsilon, self.alpha, self.steps = kind, epsilon, alpha, steps
        self.delta = None
        self.record = False
        self.handle = embeddings.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        import torch

        if self.record:
            self.delta = torch.zeros_like(output, requires_grad=True)
        return None if self.delta is None else output + self.delta

    @staticmethod
    def _unit(tensor):
        norm = tensor.flatten(1).norm(dim=1).clamp_min(1e-12)
        return tensor / norm.view(-1, *([1] * (tensor.dim() - 1)))

    def _project(self, tensor):
        norm = tensor.flatten(1).norm(dim=1).clamp_min(1e-12)
        scale = (self.epsilon / norm).clamp(max=1.0)
        return tensor * scale.view(-1, *([1] * (tensor.dim() - 1)))

    def clean_pass(self, loss_fn: Callable[[], Any], backward: Callable[[Any], None], quiet) -> Any:
        """The ordinary forward/backward, recording the gradient at the embeddings (no DDP sync yet)."""
        self.record = True
        try:
            with quiet():
                loss = loss_fn()
                self.record = False
                backward(loss)
        finally:
            self.record = False
        return loss

    def adversarial_pass(self, loss_fn: Callable[[], Any], backward: Callable[[Any], None], quiet, final) -> None:
        import torch

        grad = self.delta.grad
        if grad is None:  # nothing reached the embeddings (should not happen): skip the attack
            self.delta = None
            return
        steps, size = (1, self.epsilon) if self.kind == "fgm" else (self.steps, self.alpha)
        perturbation = torch.zeros_like(grad)
        try:
            for k in range(steps):
                perturbation = self._project(perturbation + size * self._unit(grad))
                last = k == steps - 1
                self.delta = perturbation.detach().requires_grad_(not last)
                if last:
                    with final():
                        backward(loss_fn())
                else:
                    with quiet():
                        (grad,) = torch.autograd.grad(loss_fn(), self.delta)
        finally:
            self.delta = None

    def remove(self) -> None:
        self.handle.remove()


# ---------------------------------------------------------------- checkpoints


def _trainable_state(model) -> dict:
    return {n: p.detach().to("cpu").contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_folders(root: Path) -> list[Path]:
    """Complete checkpoints (state.json written last), oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / "state.json").exists())


def save_checkpoint(
    root: Path, state: LoopState, model, optimizer, scheduler, accelerator, keep_last: int, digest: str
) -> Path:
    """Written into a hidden temporary folder and renamed into place, so a kill mid-save never leaves a
    half checkpoint that `resume: auto` would pick up."""
    import torch
    from safetensors.torch import save_file

    name = f"step-{state.step:08d}"
    tmp = root / f".{name}.tmp"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng-{accelerator.process_index}.pt")  # each process has its own RNG
    if main:
        save_file(_trainable_state(model), str(tmp / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    accelerator.wait_for_everyone()
    final = root / name
    if main:
        (tmp / "state.json").write_text(json.dumps({**asdict(state), "config_digest": digest}, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_folders(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(resume: str, root: Path) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        found = checkpoint_folders(root)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not (path / "state.json").exists():
        raise InkwellError(
            f"training.resume: {path} is not a checkpoint folder (no state.json)",
            field="training.resume",
            hint=f"use auto, never, or a folder like {root}/step-00000100",
        )
    return path


def load_checkpoint(folder: Path, model, optimizer, scheduler, accelerator, digest: str, say) -> LoopState:
    import torch
    from safetensors.torch import load_file

    saved = load_file(str(folder / "trainable.safetensors"))
    params = dict(model.named_parameters())
    unknown = [n for n in saved if n not in params]
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if unknown or missing:
        raise InkwellError(
            f"checkpoint {folder} does not match this model/method (unknown {unknown[:3]}, missing {missing[:3]})",
            field="training.resume",
            hint="resume with the config that wrote it, or set training.resume=never",
        )
    with torch.no_grad():
        for name, value in saved.items():
            params[name].copy_(value.to(params[name].device))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng = folder / f"rng-{accelerator.process_index}.pt"
    _set_rng_state(torch.load(rng if rng.exists() else folder / "rng-0.pt", weights_only=False))
    data = json.loads((folder / "state.json").read_text())
    if data.pop("config_digest", digest) != digest:
        say(f"warning: {folder} was written with a different config; resuming anyway")
    data["stopped"] = ""  # a finished run resumed with more max_steps/epochs goes on
    return LoopState(**data)


def config_digest(config: dict) -> str:
    """What must match for a resume to continue the same run (resume/steps/epochs/progress and the memory and
    logging switches loss_chunk_tokens/tensorboard may change)."""
    free = ("resume", "max_steps", "epochs", "progress", "loss_chunk_tokens", "tensorboard")
    training = {k: v for k, v in config.get("training", {}).items() if k not in free}
    essential = {**config, "training": training, "output": None}
    return hashlib.sha256(json.dumps(essential, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- metrics and plot


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    # a line torn by a kill mid-write is left out rather than stopping the resumed run
    return [row.record for row in read_jsonl(path, on_error="skip", field="metrics") if row.record is not None]


def plot_losses(records: list[dict], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", linewidth=1.2, markersize=4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (mean per target token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)


def tensorboard_writer(folder: Path, start_step: int, say: Callable[[str], None] = print):
    """torch's SummaryWriter on OUT/tensorboard. A resumed run purges events logged after its checkpoint
    (they are replayed), as metrics.jsonl does. None, with a note, when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        say(
            "note: `pip install tensorboard` to get TensorBoard event files; metrics.jsonl and loss.png are written anyway"
        )
        return None
    return SummaryWriter(str(folder), purge_step=start_step + 1 if start_step else None)


def log(board, record: dict) -> None:
    """Every number of a metrics.jsonl record but step/epoch, as val/<key> (val_loss -> val/loss) or train/<key>."""
    if board is None:
        return
    for key, value in record.items():
        if key not in ("step", "epoch") and isinstance(value, (int, float)):
            board.add_scalar(f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}", value, record["step"])
    board.flush()  # a person watching `tensorboard --logdir OUT` sees every step as it happens


# ---------------------------------------------------------------- the loop


def evaluate(
    model,
    examples: list[dict],
    batch_size: int,
    pad_id: int,
    accelerator,
    loss_of=None,
    collate_fn: Callable[[list[dict], int], dict] = collate,
) -> float:
    """Mean loss per counted item (target token) over the validation set (sharded across processes). `loss_of`
    is the training loss (losses.CausalLMLoss: chunked for large vocabularies); default: the model's own."""
    import torch

    from inkwell.train.losses import CausalLMLoss

    loss_of = loss_of or CausalLMLoss()

    model.eval()
    rank, world = accelerator.process_index, accelerator.num_processes
    mine = list(range(rank, len(examples), world))
    total = torch.zeros((), device=accelerator.device)
    count = torch.zeros((), device=accelerator.device)
    one = torch.tensor(1.0, device=accelerator.device)
    with torch.no_grad():
        for start in range(0, len(mine), batch_size):
            batch = collate_fn([examples[i] for i in mine[start : start + batch_size]], pad_id)
            count += loss_of.count(batch)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            total += loss_of(model, batch, one).float()  # summed over tokens
    model.train()
    total, count = accelerator.reduce(total, "sum"), accelerator.reduce(count, "sum")
    return float(total / count.clamp_min(1))


def train_loop(
    model,
    train_set: list[dict],
    val_set: list[dict],
    t,
    out: Path,
    accelerator,
    *,
    pad_id: int,
    total_steps: int,
    steps_per_epoch: int,
    digest: str,
    group_by_length: bool = False,
    after_step: Callable[[int], None] | None = None,
    callbacks: list[Callable[[LoopState, dict], None]] = (),
    say: Callable[[str], None] = print,
    loss_of=None,
    collate_fn: Callable[[list[dict], int], dict] = collate,
    validate: Callable[[Any], dict] | None = None,
    speed: str = "tokens",
    desc: str = "train",
) -> LoopResult:
    """Train `model` (already on its method: full, frozen, PEFT) and return where it ended.
    `callbacks(state, record)` run after every step (tests use them to simulate a crash).

    What is learnt, for stages other than next-token prediction (defaults: sft and pretrain's):
    `loss_of(model, batch, num_items)` with `loss_of.count(batch)` (default `losses.build_loss`);
    `collate_fn(examples, pad_id)` makes a batch; `validate(model)` returns {"val_loss", other val_* scores}
    (default: the mean loss per counted item, sharded over processes); `speed` is what the throughput
    counts, "tokens" (tokens_per_s) or "examples" (examples_per_s); `desc` labels the progress bar."""
    import torch
    from tqdm.auto import tqdm

    from inkwell.train.losses import build_loss

    started = time.perf_counter()
    main = accelerator.is_main_process
    rank, world = accelerator.process_index, accelerator.num_processes
    metrics_path, checkpoints = out / METRICS, out / CHECKPOINTS

    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)  # the scheduler is stepped by us, once per step
    raw = accelerator.unwrap_model(model)

    state = LoopState()
    resume_from = find_checkpoint(t.resume, checkpoints)
    if resume_from is not None:
        state = load_checkpoint(resume_from, raw, optimizer, scheduler, accelerator, digest, say)
        say(f"resuming from {resume_from} (step {state.step} of {total_steps})")
        if main:  # forget steps logged after that checkpoint: the resumed run will log them again
            kept = [r for r in read_metrics(metrics_path) if r.get("step", 0) <= state.step]
            with atomic_write(metrics_path) as handle:
                handle.writelines(json.dumps(r) + "\n" for r in kept)
    elif main:
        if t.resume == "never" and checkpoint_folders(checkpoints):
            say(f"training.resume is never: removing the old checkpoints in {checkpoints}")
            shutil.rmtree(checkpoints, ignore_errors=True)
        metrics_path.unlink(missing_ok=True)
    accelerator.wait_for_everyone()

    if loss_of is None:
        loss_of = build_loss(raw, t.loss_chunk_tokens, say)  # chunked cross-entropy for large vocabularies
        if loss_of.chunk:
            say(
                f"loss: cross-entropy in chunks of {loss_of.chunk} positions (vocabulary {loss_of.head.weight.shape[0]:,})"
            )
    board = tensorboard_writer(out / TENSORBOARD, state.step, say) if main and t.tensorboard else None
    embeddings = raw.get_input_embeddings()
    neftune = activate_neftune(embeddings, t.neftune_alpha) if t.neftune_alpha else None
    attack = (
        None
        if t.adversarial == "none"
        else EmbeddingAttack(embeddings, t.adversarial, t.adversarial_epsilon, t.adversarial_alpha, t.adversarial_steps)
    )
    scale = float(world)  # DDP averages gradients over processes; the loss is already a global mean
    lengths = [len(e["input_ids"]) for e in train_set]
    trainable = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not (main and t.progress),
        desc=desc,
        unit="step",
        dynamic_ncols=True,
    )
    model.train()

    def step_on(batch: dict, n_items, sync: bool):
        """Forward + backward of one micro-batch; returns the (unscaled) loss."""
        quiet = lambda: accelerator.no_sync(model)  # noqa: E731 - accumulate locally, no gradient all-reduce
        final = contextlib.nullcontext if sync else quiet
        loss_fn = lambda: loss_of(model, batch, n_items)  # noqa: E731
        backward = lambda loss: accelerator.backward(loss * scale)  # noqa: E731
        if attack is None:
            with final():
                loss = loss_fn()
                backward(loss)
            return loss.detach()
        loss = attack.clean_pass(loss_fn, backward, quiet)
        attack.adversarial_pass(loss_fn, backward, quiet, final)
        return loss.detach()

    def scores() -> dict:
        """{"val_loss": ..., and any other val_* number the stage reports}."""
        if validate is not None:
            return validate(model)
        return {"val_loss": evaluate(model, val_set, t.batch_size, pad_id, accelerator, loss_of, collate_fn)}

    try:
        if val_set and t.eval_on_start and state.step == 0:
            start_val = scores()
            state.best_val, state.best_step = start_val["val_loss"], 0
            first = {"step": 0, "epoch": 0.0, **start_val, "val_loss": round(start_val["val_loss"], 6)}
            log(board, first)
            if main:
                with metrics_path.open("a") as handle:
                    handle.write(json.dumps(first) + "\n")
        while state.step < total_steps and not state.stopped:
            batches = epoch_batches(lengths, t.batch_size, world, t.seed, state.epoch, group_by_length)
            windows = [batches[i : i + t.grad_accum] for i in range(0, len(batches), t.grad_accum)]
            for window in windows[state.window :]:
                if state.step >= total_steps:
                    break
                tick = time.perf_counter()
                micro = [
                    collate_fn([train_set[i] for i in group[rank * t.batch_size : (rank + 1) * t.batch_size]], pad_id)
                    for group in window
                ]
                n_items = torch.tensor(float(sum(loss_of.count(b) for b in micro)), device=accelerator.device)
                n_items = accelerator.reduce(n_items, "sum").clamp_min(
                    1
                )  # target tokens (or examples) of the whole step
                step_loss = torch.zeros((), device=accelerator.device)
                for k, batch in enumerate(micro):
                    batch = {key: value.to(accelerator.device) for key, value in batch.items()}
                    step_loss += step_on(batch, n_items, sync=k == len(micro) - 1).float()
                grad_norm = accelerator.clip_grad_norm_(trainable, t.max_grad_norm or float("inf"))
                lr = scheduler.get_last_lr()[0]
                optimizer.step()
                if after_step is not None:
                    after_step(state.step)  # e.g. AdaLoRA rank allocation (needs the gradients)
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss_value = float(accelerator.reduce(step_loss, "sum"))
                tokens = sum(lengths[i] for group in window for i in group)
                done = tokens if speed == "tokens" else sum(len(group) for group in window)
                state.step += 1
                state.window += 1
                state.tokens += tokens
                record = {
                    "step": state.step,
                    "epoch": round(state.step / steps_per_epoch, 4),
                    "loss": round(loss_value, 6),
                    "lr": lr,
                    "grad_norm": round(float(grad_norm), 6),
                    f"{speed}_per_s": round(done / max(time.perf_counter() - tick, 1e-9), 1),
                }
                if val_set and ((t.eval_every and state.step % t.eval_every == 0) or state.step == total_steps):
                    record.update(scores())
                    record["val_loss"] = round(record["val_loss"], 6)
                    if state.best_val is None or record["val_loss"] < state.best_val:
                        state.best_val, state.best_step, state.bad_evals = record["val_loss"], state.step, 0
                    else:
                        state.bad_evals += 1
                        if t.early_stopping_patience and state.bad_evals >= t.early_stopping_patience:
                            state.stopped = "early_stopping"
                if state.step >= total_steps and not state.stopped:
                    state.stopped = "max_steps"
                if main:
                    with metrics_path.open("a") as handle:
                        handle.write(json.dumps(record) + "\n")
                log(board, record)
                bar.update(1)
                shown = {"tok_s" if speed == "tokens" else "ex_s": f"{record[f'{speed}_per_s']:.0f}"}
                shown.update(
                    {
                        key[4:]: f"{value:.3f}"
                        for key, value in record.items()
                        if key.startswith("val_") and key != "val_loss"
                    }
                )
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", **shown)  # + e.g. accuracy for classify
                if t.save_every and (state.step % t.save_every == 0 or state.stopped):
                    save_checkpoint(checkpoints, state, raw, optimizer, scheduler, accelerator, t.keep_last, digest)
                for callback in callbacks:
                    callback(state, record)
                if state.stopped:
                    break
            else:
                state.epoch += 1
                state.window = 0
        if not state.stopped:
            state.stopped = "max_steps"
        if val_set and state.best_val is None:  # e.g. resumed after the last step: still report a val loss
            state.best_val = scores()["val_loss"]
            state.best_step = state.step
    finally:
        bar.close()
        if board is not None:
            board.close()
        if neftune is not None:
            neftune.remove()
        if attack is not None:
            attack.remove()
    accelerator.wait_for_everyone()
    records = read_metrics(metrics_path) if main else []
    if main and records:
        plot_losses(records, out / PLOT, title=out.name)
    model = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    return LoopResult(
        model=model, state=state, records=records, total_steps=total_steps, seconds=time.perf_counter() - started
    )
