"""Models: the registry of embedded models and loading from a name, a Hugging Face folder or a GGUF file."""

from inkwell.models.registry import DEFAULT_MODEL, EMBEDDED_MODELS, EmbeddedModel

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "EmbeddedModel"]
