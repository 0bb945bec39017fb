"""Helpers for the server tests: tiny LoRA adapters and a real uvicorn server on 127.0.0.1 (a free port),
run in a background thread so the official `openai` client and httpx can talk to it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

API_KEY = "sk-inkwell-test"


def build_lora(base: Path, out: Path, seed: int) -> Path:
    """A LoRA adapter with random (non-zero) B matrices, so it visibly changes the tiny model's output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    model.save_pretrained(out)
    return out


class LiveServer:
    def __init__(self, state, app):
        import uvicorn

        self.state = state
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=5
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not (self.server.started and self.server.servers):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if not self.state.wait_ready(60):
            raise RuntimeError(f"the test model did not load: {self.state.load_error}")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    def client(self, key: str | None = API_KEY, **kwargs):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=key or "none", max_retries=0, timeout=60, **kwargs)


def start_server(model: Path, tmp: Path, *, loader=None, **options) -> LiveServer:
    from inkwell.serve.app import create_app
    from inkwell.serve.state import ServeConfig, ServerState

    config = ServeConfig(
        model=str(model), dtype="fp32", device="cpu", batch_size=8, db_path=str(tmp / "serve.db"), **options
    )
    state = ServerState(config, loader=loader)
    return LiveServer(state, create_app(state)).start()


def hooked_loader(delay: float = 0.0, fail_at: int | None = None):
    """A loader whose model sleeps `delay` seconds per forward pass (so a request reliably stays in flight
    while a test looks at the server) and, with `fail_at`, raises on every fail_at-th forward pass (1 = always; 4 = after three tokens)
    with internals in the message, as a crashed kernel would."""
    from inkwell.serve.state import load_engine

    def load(config):
        engine, adapters = load_engine(config)
        calls = [0]

        def hook(_module, _args):
            calls[0] += 1
            if fail_at is not None and calls[0] % fail_at == 0:  # every fail_at-th pass: each request fails alike
                raise RuntimeError("CUDA kernel exploded at /secret/path.py:42")
            if delay:
                time.sleep(delay)

        engine.model.register_forward_pre_hook(hook)
        return engine, adapters

    return load
