"""Shared fixtures: a tiny randomly-initialised llama-style model with a real (trained-here) BPE tokenizer
and a chat template, saved as a Hugging Face folder. Built in about a second; no downloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The tiny models are far faster on one thread: several OpenMP threads on a shared 2-core machine spin-wait
# (measured: 24 s vs 99 s wall for the unit tests). Set before torch is imported; override from the shell.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Commands run on the torch engine in tests unless a test picks the ONNX fast path itself: with --engine
# auto every test's fresh INKWELL_HOME would rebuild an ONNX model (seconds each). The fast path has its
# own tests (tests/generate/test_onnx_engine.py, tests/integration/test_fast_path_real.py).
os.environ.setdefault("INKWELL_ENGINE", "torch")
# Precision must not depend on the machine: on CPUs with AVX512-BF16/AMX, `--dtype auto` and `bf16: auto`
# would turn bf16 on, and tests that check an identity in fp32 would see bf16 rounding (~1e-3). The suite
# pins fp32 here; the bf16 paths have their own tests, forced on with the `cpu_bf16` fixture so that every
# machine runs them (bf16 is slow without the matrix units, but correct, and the models are tiny).
os.environ["INKWELL_CPU_BF16"] = "off"

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "Write a product description for a bamboo water bottle.",
    "The quick brown fox jumps over the lazy dog. Poems, stories, headlines and news articles.",
    "Inkwell writes content: ads, emails, reviews, travel guides, quizzes and summaries.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    '{"questions": [{"question": "?", "options": ["a", "b"], "answer": "a"}]}',
] * 20


def build_tiny_model(folder: Path, chat: bool = True, context_length: int = 512, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>" if chat else "<|endoftext|>",
        pad_token="<|endoftext|>",
        bos_token="<|endoftext|>" if not chat else None,
    )
    if chat:
        tokenizer.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context_length,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "inkwell-model.json").write_text(
        json.dumps({"name": folder.name, "chat": chat, "context_length": context_length})
    )
    return folder


@pytest.fixture(scope="session")
def tiny_chat_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat", chat=True)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-base", chat=False)


@pytest.fixture(scope="session")
def second_chat_model(tmp_path_factory) -> Path:
    """Another tiny chat model (other random weights): a second system for ensembles."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-chat-two", chat=True, seed=7)


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread: on shared CI cores extra threads only spin (measured 60x)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Behave as a CPU with fast bf16 (AVX512-BF16/AMX) does, whatever this machine is."""
    monkeypatch.setenv("INKWELL_CPU_BF16", "on")


@pytest.fixture(autouse=True)
def inkwell_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own INKWELL_HOME (history database, user templates, model cache)."""
    home = tmp_path / "inkwell-home"
    monkeypatch.setenv("INKWELL_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def tiny_engine(tiny_chat_model):
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    return Engine(load_model(str(tiny_chat_model), dtype="fp32", device="cpu"), batch_size=4)


@pytest.fixture(scope="session")
def tiny_base_engine(tiny_base_model):
    from inkwell.generate.engine import Engine
    from inkwell.models.load import load_model

    return Engine(load_model(str(tiny_base_model), dtype="fp32", device="cpu"), batch_size=4)


def build_tiny_t5(folder: Path, seed: int = 0) -> Path:
    """A tiny random encoder-decoder (T5) saved as a plain Hugging Face folder (no Inkwell model card, as a
    downloaded T5 folder would be), with a BPE tokenizer that ends every encoded text with </s>, as T5's does."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    specials = ["<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    model = T5ForConditionalGeneration(config)
    with torch.no_grad():  # T5 ties its output layer to the embeddings and starts decoding from <pad>: a random
        model.shared.weight[0].zero_()  # one then only repeats <pad> (empty text); a zero <pad> vector stops that
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A tiny random BERT encoder (the all-MiniLM-L6-v2 family) with a WordPiece vocabulary of the test texts'
    words and characters (CJK characters are split one by one, as BERT does)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    texts = CORPUS + ["The quick brown fox jumps.", "Poems, stories and headlines.", "举头望明月，低头思故乡。"]
    chars = sorted({c for text in texts for c in text.lower() if not c.isspace()})
    words = sorted({w.strip(".,:;!?\"'{}[]()") for text in texts for w in text.lower().split()} - {""})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *words]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,  # as all-MiniLM-L6-v2
        pad_token_id=tokenizer.pad_token_id,
        # BERT's 0.02 leaves a tiny random model's [CLS] output nearly the same for every text, so a few steps
        # cannot separate anything; larger weights make the random encoder tell texts apart
        initializer_range=0.2,
    )
    BertModel(config).save_pretrained(folder)  # saved as sentence-transformers ship it: the bare encoder
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5_model(tmp_path_factory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("models") / "tiny-t5")


@pytest.fixture(scope="session")
def tiny_bert_model(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")
