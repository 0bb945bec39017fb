"""Supervised fine-tuning: teach a model to answer prompts, with the loss on the response tokens only.

    inkwell train configs/smollm2-lora-sft.yaml [key=value ...]

The recipe reads top to bottom: data rows (checked before anything heavy), the tokenizer and prompt
rendering (exactly as `inkwell write` renders), the model and its method, the shared loop, the outputs.
An encoder-decoder (T5 family, from a local folder) takes the same path with its own components: examples
split into encoder input and decoder labels (`Encoder(seq2seq=True)`), `collate_seq2seq` and `Seq2SeqLMLoss`.
"""

from __future__ import annotations

from collections.abc import Callable

from inkwell.errors import InkwellError
from inkwell.train.collate import Encoder, collate, collate_seq2seq, pack_examples, packing_isolates
from inkwell.train.config import SFTConfig, config_dict
from inkwell.train.data import DataReport, expand, read_rows, split_off
from inkwell.train.loop import config_digest, make_accelerator, plan_steps, precision_of, train_loop
from inkwell.train.losses import Seq2SeqLMLoss
from inkwell.train.methods import apply_method, count_parameters, save_weights, step_hook
from inkwell.train.outputs import (
    TrainedRun,
    check_architecture,
    check_length,
    context_of,
    load_base,
    load_tokenizer,
    model_spec,
    output_dir,
    write_run_card,
)


def run(cfg: SFTConfig, *, callbacks: list = (), say: Callable[[str], None] = print) -> TrainedRun:
    from accelerate.utils import set_seed

    from inkwell.models.load import resolve

    t = cfg.training
    config_dir = cfg._source.parent if cfg._source else None
    out = output_dir(cfg)
    accelerator = make_accelerator(t.bf16)
    if not accelerator.is_main_process:
        say = lambda _message: None  # noqa: E731 - one voice per run

    # 1. data rows: files exist, every row parses (no tokenizer or model yet)
    report = DataReport(on_error=cfg.data.on_error)
    train_rows = read_rows(
        expand(cfg.data.train, config_dir, "data.train"), cfg.data.format, report, cfg.data.template, config_dir
    )
    val_rows = (
        read_rows(expand(cfg.data.val, config_dir, "data.val"), cfg.data.format, report, cfg.data.template, config_dir)
        if cfg.data.val
        else []
    )

    # 2. tokenizer; prompts rendered as generation renders them, prompt tokens labelled -100
    spec = model_spec(cfg.model.name, config_dir)
    with accelerator.main_process_first():  # one process prepares a GGUF model's cache, the others wait
        folder, card = resolve(spec, progress=say)
    architecture = check_architecture(folder, spec, "sft")  # a causal LM or an encoder-decoder (T5)
    seq2seq = architecture == "seq2seq"
    if seq2seq and cfg.method == "freeze":
        raise InkwellError(
            "method freeze trains the last blocks of a decoder-only model; this model is an encoder-decoder",
            field="method",
            hint="use method: lora or full",
        )
    check_length(t.max_length, context_of(folder, card))
    tokenizer, stop_ids = load_tokenizer(folder)
    chat = bool(card.get("chat", tokenizer.chat_template is not None))  # the rule load_model uses
    encoder = Encoder(tokenizer, chat=chat, stop_ids=stop_ids, max_length=t.max_length, seq2seq=seq2seq)
    train_set = encoder.encode_all(train_rows, report)
    val_set = encoder.encode_all(val_rows, report)
    if cfg.data.val_split:
        train_set, val_set = split_off(train_set, cfg.data.val_split, t.seed)
    say(report.summary())
    if not train_set:
        raise InkwellError(
            "no training examples left after skipping bad rows",
            field="data.train",
            hint="see the skipped rows above; fix them or point data.train at other files",
        )

    # 3. the model and its method
    set_seed(t.seed)
    model = load_base(folder, t.dropout, architecture)
    group_by_length = True
    if t.packing and seq2seq:
        say("note: training.packing is for decoder-only models; this seq2seq model trains on padded pairs")
    elif t.packing:
        if packing_isolates(model):
            train_set = pack_examples(train_set, t.max_length, t.seed)
            val_set = pack_examples(val_set, t.max_length, t.seed) if val_set else []
            group_by_length = False
        else:
            say(
                "warning: this model's attention does not keep packed examples apart; training without packing "
                "(padding, with examples of similar length batched together)"
            )
    steps_per_epoch, total_steps = plan_steps(len(train_set), t, accelerator.num_processes)
    model = apply_method(model, cfg, folder, total_steps, task_type="SEQ_2_SEQ_LM" if seq2seq else "CAUSAL_LM")
    params = count_parameters(model)
    say(
        f"training {cfg.method} on {spec}: {params['trainable']:,} of {params['total']:,} weights ({params['percent']}%), "
        f"{len(train_set)} train / {len(val_set)} val examples, {total_steps} steps -> {out}"
    )

    # 4. the loop
    out.mkdir(parents=True, exist_ok=True)
    resolved = config_dict(cfg)
    result = train_loop(
        model,
        train_set,
        val_set,
        t,
        out,
        accelerator,
        pad_id=tokenizer.pad_token_id,
        total_steps=total_steps,
        steps_per_epoch=steps_per_epoch,
        digest=config_digest(resolved),
        group_by_length=group_by_length,
        after_step=step_hook(model, cfg.method),
        callbacks=callbacks,
        say=say,
        loss_of=Seq2SeqLMLoss() if seq2seq else None,  # None: the loop's causal-LM loss (chunked when large)
        collate_fn=collate_seq2seq if seq2seq else collate,
    )

    # 5. outputs: weights that load back in one call, and a card that says what they are
    trained = result.model
    trained.eval()
    run_card: dict = {}
    if accelerator.is_main_process:
        model_card = {
            "name": out.name,
            "chat": chat,
            "context_length": context_of(folder, card),
            "languages": card.get("languages", []),
            "base_model": spec,
            "trained_by": "inkwell train (sft)",
        }
        weights = save_weights(trained, cfg.method, out, tokenizer, model_card)
        run_card = write_run_card(
            out,
            precision=precision_of(accelerator),
            stage="sft",
            method=cfg.method,
            architecture=architecture,
            weights=weights,
            base_model=spec,
            base_model_path=str(folder),
            chat=chat,
            template=cfg.data.template,
            packed=t.packing and not group_by_length,
            data={
                "format": cfg.data.format,
                "examples": {"train": len(train_set), "val": len(val_set)},
                **report.to_dict(),
            },
            parameters=params,
            metrics=result.final,
            config=resolved,
            command=cfg._command,
        )
        say(f"saved {weights} weights to {out}")
    accelerator.wait_for_everyone()
    return TrainedRun(out=out, model=trained, tokenizer=tokenizer, card=run_card)
