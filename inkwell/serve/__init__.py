"""The HTTP API: an OpenAI-compatible server over the generation engine (`inkwell serve`)."""
