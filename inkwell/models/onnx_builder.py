"""Runs ONNX Runtime GenAI's model builder (`python -m inkwell.models.onnx_builder <builder args>`) with the
config adjustments it needs under transformers 5.

transformers 5 keeps Gemma-3's RoPE settings per layer type (`rope_parameters = {"full_attention": {...},
"sliding_attention": {...}}`) and no longer sets `rope_theta` / `rope_local_base_freq`. The builder's
Gemma-3 class still reads the flat form (its base class indexes `rope_parameters["rope_type"]`, a KeyError
on the nested dict, and falls back to theta 10000 for the global layers). There is no builder option for
this, so the config object the builder loads is given the flat view of the same values; anything but
plain ("default") RoPE is left alone and fails in the builder as before.
"""

from __future__ import annotations

import runpy
import sys


def flat_rope(config) -> None:
    """Give a per-layer-type RoPE config the flat attributes the builder reads (in place)."""
    params = getattr(config, "rope_parameters", None)
    if not isinstance(params, dict) or "rope_type" in params:
        return
    full, sliding = params.get("full_attention"), params.get("sliding_attention")
    if not (isinstance(full, dict) and isinstance(sliding, dict)):
        return
    if full.get("rope_type", "default") != "default" or sliding.get("rope_type", "default") != "default":
        return  # scaled RoPE per layer type: not expressible in the builder's flat form
    config.rope_theta = full["rope_theta"]
    config.rope_local_base_freq = sliding["rope_theta"]
    config.rope_parameters = {"rope_type": "default", "rope_theta": full["rope_theta"]}


def main(argv: list[str]) -> None:
    from transformers import AutoConfig

    load = AutoConfig.from_pretrained

    def from_pretrained(*args, **kwargs):
        config = load(*args, **kwargs)
        for part in (config, getattr(config, "text_config", None)):
            if part is not None:
                flat_rope(part)
        return config

    AutoConfig.from_pretrained = from_pretrained
    sys.argv = ["onnxruntime_genai.models.builder", *argv]
    runpy.run_module("onnxruntime_genai.models.builder", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
