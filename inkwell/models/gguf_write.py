"""Write a Hugging Face model folder as one GGUF file (f16 or q8_0) that llama.cpp loads, with the `gguf` package.

    write_gguf(folder, "model-q8_0.gguf", "q8_0", source=<the GGUF the base model came from, or None>)

What goes into the file, and where it comes from:

    tensors            the folder's safetensors, renamed with gguf's own HF -> GGUF name table (TensorNameMap),
                       with llama.cpp's layout transforms re-applied (llama: q/k rows permuted; gemma3:
                       norms stored as w + 1) -- transformers undoes exactly these when it reads a GGUF
    model key/values   copied from the source GGUF when the tensors match it (same architecture, names and
                       shapes: every fine-tune of an embedded model); otherwise built from config.json
                       (llama architecture only)
    tokenizer          copied from the source GGUF when it holds the same vocabulary (its pre-tokenizer name and
                       token types are what llama.cpp expects); otherwise built from tokenizer.json
                       (byte-level BPE: tokens, token types, merges, special ids, chat template)

Tensor types follow llama.cpp's convert_hf_to_gguf.py: 1-D tensors (norms, biases) stay f32; 2-D weights are
f16, or Q8_0 with `q8_0`, or Q4_1 / Q4_0 with `q4_1` / `q4_0` (the token embedding and output head then stay
Q8_0, as in the embedded SmolLM2 file); a row length that is not a multiple of 32 falls back to f16.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inkwell.errors import InkwellError

GGUF_TYPES = ("f16", "q8_0", "q4_1", "q4_0")


@dataclass(frozen=True)
class Architecture:
    gguf_name: str  # general.architecture in the file, as gguf's MODEL_ARCH_NAMES spells it
    needs_source: bool  # model key/values can only be copied from a source GGUF (no builder here)
    transform: Callable[[str, Any, dict], Any]  # (hf name, fp32 tensor, config) -> the tensor llama.cpp expects


def _llama_permute(name: str, tensor, config: dict):
    """llama.cpp stores q/k rows interleaved per head for its rope kernel (convert_hf_to_gguf.py
    LlamaModel.permute); transformers' GGUF reader applies the inverse, so both must agree exactly."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    if ".self_attn.q_proj." in name:
        groups = heads
    elif ".self_attn.k_proj." in name:
        groups = kv_heads
    else:
        return tensor
    shape = tensor.shape
    return tensor.reshape(groups, 2, shape[0] // groups // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _gemma_norms(name: str, tensor, config: dict):
    """Gemma's RMSNorm scales by (1 + w); llama.cpp stores w + 1 (convert_hf_to_gguf.py Gemma3Model)."""
    return tensor + 1.0 if name.endswith("norm.weight") else tensor


# HF model_type -> how to write it. A new architecture needs its llama.cpp transforms checked against
# transformers' reader (modeling_gguf_pytorch_utils TENSOR_PROCESSORS) and a round-trip test.
ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", needs_source=False, transform=_llama_permute),
    "gemma3_text": Architecture("gemma3", needs_source=True, transform=_gemma_norms),
}


@dataclass
class GGUFReport:
    path: Path
    out_type: str
    tensors: int
    bytes: int
    model_metadata: str  # "source GGUF <path>" or "config.json"
    tokenizer_metadata: str  # "source GGUF <path>" or "tokenizer.json"
    quantized: list[str] = field(default_factory=list)  # matrices stored quantised (Q8_0 / Q4_1 / Q4_0)
    fallback_f16: list[str] = field(default_factory=list)  # 2-D tensors q8_0 could not hold (row length % 32)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "type": self.out_type,
            "tensors": self.tensors,
            "bytes": self.bytes,
            "model_metadata": self.model_metadata,
            "tokenizer_metadata": self.tokenizer_metadata,
            "q8_0_tensors": len(self.quantized),
            "f16_fallback": self.fallback_f16,
        }


def architecture_of(config: dict) -> Architecture:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise InkwellError(
            f"GGUF export does not support the '{model_type}' architecture; supported: {', '.join(ARCHITECTURES)}",
            field="gguf",
            hint="export a Hugging Face folder with --merge instead (transformers and vLLM load it)",
        )
    return ARCHITECTURES[model_type]


# ---------------------------------------------------------------- tensors


def read_tensors(folder: Path) -> dict[str, Any]:
    """All weights of a safetensors model folder, as fp32 torch tensors (bf16/f16 checkpoints included)."""
    import torch
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InkwellError(
            f"no *.safetensors weights in {folder}",
            field="gguf",
            hint="GGUF export reads safetensors; re-save the model with save_pretrained",
        )
    tensors = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key).to(torch.float32)
    return tensors


def gguf_tensors(folder: Path, config: dict, arch: Architecture) -> dict[str, Any]:
    """GGUF name -> fp32 numpy array, in llama.cpp's layout, ready to be typed and written."""
    import gguf

    tensors = read_tensors(folder)
    arch_id = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch.gguf_name)
    names = gguf.get_tensor_name_map(arch_id, config["num_hidden_layers"])
    tied = config.get("tie_word_embeddings", True)
    out: dict[str, Any] = {}
    unmapped = []
    for hf_name, tensor in tensors.items():
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when there is no output.weight
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            unmapped.append(hf_name)
            continue
        out[gguf_name] = arch.transform(hf_name, tensor, config).numpy()
    if unmapped:
        raise InkwellError(
            f"{len(unmapped)} weights have no GGUF name for '{arch.gguf_name}': {', '.join(unmapped[:4])}",
            field="gguf",
            hint="this model has parts llama.cpp's format does not describe; use --merge",
        )
    return out


def tensor_type(name: str, array, out_type: str):
    """The GGML type llama.cpp's converter would pick for this tensor."""
    import gguf

    if array.ndim <= 1 or name.endswith("_norm.weight"):
        return gguf.GGMLQuantizationType.F32
    if out_type == "q8_0" or (out_type in ("q4_0", "q4_1") and name in ("token_embd.weight", "output.weight")):
        return gguf.GGMLQuantizationType.Q8_0  # 4-bit files keep the embedding / head at 8 bits, as SmolLM2's does
    if out_type == "q4_1":
        return gguf.GGMLQuantizationType.Q4_1
    if out_type == "q4_0":
        return gguf.GGMLQuantizationType.Q4_0
    return gguf.GGMLQuantizationType.F16


# ---------------------------------------------------------------- metadata


def _fields(reader, predicate: Callable[[str], bool]) -> list[tuple[str, Any, Any, Any]]:
    """(key, value, type, sub_type) of the reader's key/values that `predicate` accepts, in file order
    (the recipe of gguf's own scripts/gguf_new_metadata.py)."""
    import gguf

    picked = []
    for field_ in reader.fields.values():
        if (
            field_.name.startswith("GGUF.")
            or field_.name == gguf.Keys.General.ARCHITECTURE
            or not predicate(field_.name)
        ):
            continue
        kind = field_.types[0]
        sub = field_.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        picked.append((field_.name, field_.contents(), kind, sub))
    return picked


def source_matches(reader, arch: Architecture, tensors: dict[str, Any]) -> bool:
    """The source GGUF describes this exact model shape: same architecture, tensor names and shapes."""
    field_ = reader.fields.get("general.architecture")
    if field_ is None or field_.contents() != arch.gguf_name:
        return False
    shapes = {t.name: tuple(int(d) for d in reversed(t.shape.tolist())) for t in reader.tensors}
    return shapes == {name: tuple(array.shape) for name, array in tensors.items()}


def tokenizer_matches(reader, tokenizer) -> bool:
    """The source GGUF holds this tokenizer's vocabulary: every token at the same id."""
    field_ = reader.fields.get("tokenizer.ggml.tokens")
    if field_ is None:
        return False
    tokens = field_.contents()
    vocab = tokenizer.get_vocab()
    return len(vocab) <= len(tokens) and all(
        index < len(tokens) and tokens[index] == token for token, index in vocab.items()
    )


def llama_model_kv(writer, config: dict) -> None:
    """The llama key/values llama.cpp reads (the subset convert_hf_to_gguf.py writes for a plain llama)."""
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type != "default":
        raise InkwellError(
            f"GGUF export of a llama model with '{rope_type}' RoPE scaling needs its source GGUF",
            field="gguf",
            hint="export with --merge, or start from a model that came from a GGUF file",
        )
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta") or config.get("rope_theta") or 10000.0))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_vocab_size(config["vocab_size"])
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def bpe_tokenizer_kv(writer, folder: Path, tokenizer, vocab_size: int) -> None:
    """Byte-level BPE tokenizer key/values from a tokenizer.json folder, the way convert_hf_to_gguf.py's
    get_vocab_base() builds them; merges, special ids and the chat template come from gguf's SpecialVocab."""
    import gguf

    spec = (
        json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        if (folder / "tokenizer.json").exists()
        else {}
    )
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise InkwellError(
            "GGUF export without a source GGUF needs a byte-level BPE tokenizer (tokenizer.json, GPT-2 style); "
            f"this one is {model.get('type') or 'not a tokenizer.json'}",
            field="gguf",
            hint="export with --merge instead",
        )
    if not (pre.get("type") == "ByteLevel" and pre.get("use_regex", True)):
        # llama.cpp splits text with a named pre-tokenizer regex; only GPT-2's is knowable from the file alone.
        raise InkwellError(
            f"the tokenizer's pre-tokenizer ({pre.get('type')}) has no llama.cpp name that inkwell can tell from tokenizer.json",
            field="gguf",
            hint="export with --merge instead, or start from a model that came from a GGUF file",
        )
    reverse = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            special = decoder[index].special if index in decoder else True
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=vocab_size)
    special.chat_template = None  # write_gguf adds the tokenizer's own template, once
    special.add_to_gguf(writer, quiet=True)


# ---------------------------------------------------------------- the file


def write_gguf(
    folder: Path,
    out: Path,
    out_type: str = "f16",
    *,
    source: Path | None = None,
    tokenizer_source: Path | None = None,
    name: str | None = None,
    chat: bool = True,
    say: Callable[[str], None] | None = None,
) -> GGUFReport:
    """Write `folder` (config.json, *.safetensors, tokenizer files) as a GGUF file at `out`, atomically.
    `source`: the GGUF the weights descend from; `tokenizer_source`: one holding the same vocabulary;
    `chat=False`: a base model, written without a chat template (llama.cpp would otherwise apply it)."""
    import gguf
    from transformers import AutoTokenizer

    say = say or (lambda _message: None)
    if out_type not in GGUF_TYPES:
        raise InkwellError(f"unknown GGUF type '{out_type}'", field="gguf", hint=f"use one of: {', '.join(GGUF_TYPES)}")
    config = json.loads((folder / "config.json").read_text())
    arch = architecture_of(config)
    say("reading the weights")
    tensors = gguf_tensors(folder, config, arch)
    tokenizer = AutoTokenizer.from_pretrained(folder)

    reader = gguf.GGUFReader(source) if source else None
    whole = reader is not None and source_matches(reader, arch, tensors)
    if arch.needs_source and not whole:
        raise InkwellError(
            f"GGUF export of '{config.get('model_type')}' models copies the model's key/values from the GGUF it came from, "
            + ("and none was found" if reader is None else f"and {source} does not match this model's tensors"),
            field="gguf",
            hint=f"models built from config.json alone: {', '.join(k for k, a in ARCHITECTURES.items() if not a.needs_source)}",
        )
    tok_path = source if whole else tokenizer_source
    tok_reader = reader if whole else (gguf.GGUFReader(tokenizer_source) if tokenizer_source else None)
    tok_copied = tok_reader is not None and tokenizer_matches(tok_reader, tokenizer)

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, arch.gguf_name)
    try:
        template = tokenizer.chat_template if chat and isinstance(tokenizer.chat_template, str) else None
        dropped = {gguf.Keys.General.FILE_TYPE, gguf.Keys.General.QUANTIZATION_VERSION, gguf.Keys.General.NAME}
        if template or not chat:
            dropped.add(gguf.Keys.Tokenizer.CHAT_TEMPLATE)  # the template inkwell used in training wins
        if whole:
            for key, value, kind, sub in _fields(reader, lambda k: k not in dropped):
                writer.add_key_value(key, value, kind, sub)
        else:
            llama_model_kv(writer, config)
            if tok_copied:
                for key, value, kind, sub in _fields(
                    tok_reader, lambda k: k.startswith("tokenizer.") and k not in dropped
                ):
                    writer.add_key_value(key, value, kind, sub)
            else:
                bpe_tokenizer_kv(writer, folder, tokenizer, config["vocab_size"])
        if template:
            writer.add_chat_template(template)
        writer.add_name(name or folder.name)
        file_type = {
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
            "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1,
            "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0,
        }.get(out_type, gguf.LlamaFileType.MOSTLY_F16)
        writer.add_file_type(int(file_type))
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        report = GGUFReport(
            path=out,
            out_type=out_type,
            tensors=len(tensors),
            bytes=0,
            model_metadata=f"source GGUF {source}" if whole else "config.json",
            tokenizer_metadata=f"source GGUF {tok_path}" if (whole or tok_copied) else "tokenizer.json",
        )
        say(f"converting {len(tensors)} tensors to {out_type}")
        for gguf_name, array in tensors.items():
            qtype = tensor_type(gguf_name, array, out_type)
            try:
                data = gguf.quants.quantize(array, qtype)
            except gguf.quants.QuantError:  # row length not a multiple of the 32-value block: llama.cpp keeps f16 too
                qtype = gguf.GGMLQuantizationType.F16
                data = gguf.quants.quantize(array, qtype)
                report.fallback_f16.append(gguf_name)
            if qtype != gguf.GGMLQuantizationType.F16 and array.ndim > 1:
                report.quantized.append(gguf_name)
            writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    finally:
        writer.close()
        if tmp.exists():
            tmp.unlink()
    report.bytes = out.stat().st_size
    return report
