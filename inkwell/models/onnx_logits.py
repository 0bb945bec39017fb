"""Logits only where generation reads them: at each row's last real token.

The model builder's graph computes the output head for every position of the input, so a prompt of 500
tokens costs 500 x vocabulary (49k) logits, and a static batch of 32 prompts allocates a [32, prompt, 49k]
fp32 tensor (~380 MB for 60-token prompts) of which generation reads one row each. The generation graph
`model.onnx` gets a gather in front of the head instead: position `attention mask sum - 1 - past length`,
clipped into the current chunk, per row (right padding included; 0 for a decode step). The untouched graph
stays beside it as `model.all-logits.onnx`, sharing the same weights file, for perplexity scoring, which
reads every position. ONNX Runtime GenAI accepts a [batch, 1, vocab] logits output at prefill.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

ALL_LOGITS = "model.all-logits.onnx"
HEAD = "/lm_head/"


def last_position_logits(onnx_dir: Path) -> bool:
    """Rewrite `onnx_dir/model.onnx` in place (keeping the original as ALL_LOGITS). False when the graph has no
    recognisable head or attention mask (then nothing changes)."""
    import onnx
    from onnx import helper, numpy_helper

    path = Path(onnx_dir) / "model.onnx"
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    heads = [n for n in graph.node if n.name.startswith(HEAD) and n.op_type in ("MatMulNBits", "MatMul")]
    inputs = {i.name for i in graph.input}
    if len(heads) != 1 or "attention_mask" not in inputs or "logits" not in {o.name for o in graph.output}:
        return False
    shutil.copyfile(path, path.with_name(ALL_LOGITS))
    head = heads[0]
    hidden = head.input[0]
    p = "/inkwell/last_position"

    def const(name: str, value) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), f"{p}/{name}"))
        return f"{p}/{name}"

    one, axis1 = const("one", 1), const("axis1", [1])
    nodes = [
        helper.make_node("ReduceSum", ["attention_mask", axis1], [f"{p}/length"], keepdims=1),  # [B, 1]
        helper.make_node("Shape", ["attention_mask"], [f"{p}/mask_shape"]),
        helper.make_node("Gather", [f"{p}/mask_shape", one], [f"{p}/total"], axis=0),
        helper.make_node("Shape", [hidden], [f"{p}/hidden_shape"]),
        helper.make_node("Gather", [f"{p}/hidden_shape", one], [f"{p}/chunk"], axis=0),
        helper.make_node("Sub", [f"{p}/total", f"{p}/chunk"], [f"{p}/past"]),
        helper.make_node("Add", [f"{p}/past", one], [f"{p}/past1"]),
        helper.make_node("Sub", [f"{p}/length", f"{p}/past1"], [f"{p}/raw"]),  # length - 1 - past
        helper.make_node("Sub", [f"{p}/chunk", one], [f"{p}/chunk_last"]),
        helper.make_node("Max", [f"{p}/raw", const("zero", 0)], [f"{p}/low"]),
        helper.make_node("Min", [f"{p}/low", f"{p}/chunk_last"], [f"{p}/index"]),  # [B, 1]
        helper.make_node("Unsqueeze", [f"{p}/index", const("axis2", [2])], [f"{p}/index3"]),  # [B, 1, 1]
        # expanded to [B, 1, H] (B and H from the hidden state's shape) for GatherElements
        helper.make_node("Slice", [f"{p}/hidden_shape", const("s0", [0]), const("s1", [1])], [f"{p}/b"]),
        helper.make_node("Slice", [f"{p}/hidden_shape", const("s2", [2]), const("s3", [3])], [f"{p}/h"]),
        helper.make_node("Concat", [f"{p}/b", const("one_v", [1]), f"{p}/h"], [f"{p}/expand"], axis=0),
        helper.make_node("Expand", [f"{p}/index3", f"{p}/expand"], [f"{p}/gather_index"]),
        helper.make_node("GatherElements", [hidden, f"{p}/gather_index"], [f"{p}/hidden"], axis=1),  # [B, 1, H]
    ]
    head.input[0] = f"{p}/hidden"
    at = list(graph.node).index(head)
    for offset, node in enumerate(nodes):
        node.name = node.name or f"{p}/{node.output[0].rsplit('/', 1)[-1]}"
        graph.node.insert(at + offset, node)
    for output in graph.output:
        if output.name == "logits":
            dim = output.type.tensor_type.shape.dim[1]
            dim.ClearField("dim_param")
            dim.dim_value = 1
    onnx.save(model, str(path))
    return True
