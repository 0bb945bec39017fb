"""Lossless low-bit weights for models that came from a GGUF: re-pack its quantisation grid, do not re-quantise.

The embedded SmolLM2 ships as a Q4_1 GGUF: every linear weight is `d * q + m` per block of 32 inputs (q in
0..15, d and m per block), and its tied embedding / output head is Q8_0 (`d * q`, q in -127..127). The
de-quantised folder holds exactly those values. Quantising it again with the model builder's round-to-nearest
int4 puts a second grid on top of the first and costs +37% perplexity; but the original grid *is* 4-bit, so it
can be written into ONNX Runtime's `MatMulNBits` without any loss:

    d * q + m  =  d * (q - 8)  +  (m + 8 d)
                  ^ MatMulNBits, symmetric, scale d      ^ r per block: y += blocksum(x) @ r^T  (fp32, exact)

MatMulNBits' own float zero points would express `m` directly but run ~25x slower on CPU (no packed kernel),
so the offset is a small fp32 side product: the input's sums per block of 32 (one MatMul with a 0/1 matrix,
shared by the matmuls that read the same input) times the offsets. The output head is re-packed as 8-bit
(`q + 128`, scale d), exact for Q8_0. Nothing here is approximate: a weight is re-packed only when every
block's values are reproduced from its recovered (q, d, m) to within fp32 rounding, otherwise the builder's
own int4 weights stay (and `repack` reports how many were exact).

Written by hand because no library re-packs one quantisation format into another: ONNX Runtime's quantisers
and the model builder all start from float weights and choose their own grid.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

BLOCK = 32
_NODE = re.compile(r"^/model/layers\.(\d+)/(attn|mlp)/(\w+?)_proj/MatMul_Q4$")
_HF_BLOCK = {"attn": "self_attn", "mlp": "mlp"}
_FUSED = {"qkv": ("q", "k", "v"), "gate_up": ("gate", "up")}


def grid4(weight: np.ndarray, block: int = BLOCK):
    """(q uint8 [N, K/block, block], d [N, K/block], m [N, K/block]) when every block of `weight` [N, K] is
    exactly d * q + m with q in 0..15 (a Q4_0/Q4_1/Q4_K source), else None."""
    n, k = weight.shape
    if k % block:
        return None
    b = weight.reshape(n, k // block, block).astype(np.float32)
    low, high = b.min(-1), b.max(-1)
    for d in ((high - low) / 15, ((high - low) / 15).astype(np.float16).astype(np.float32)):
        safe = np.where(d == 0, 1, d)[..., None]
        q = np.clip(np.rint((b - low[..., None]) / safe), 0, 15)
        back = d[..., None] * q + low[..., None]
        if np.all(np.abs(back - b) <= 1e-4 * safe + 1e-12):
            return q.astype(np.uint8), d, low
    return None


def grid8(weight: np.ndarray, block: int = BLOCK):
    """(q int [N, K/block, block] in -127..127, d [N, K/block]) when every block is exactly d * q (a Q8_0
    source), else None."""
    n, k = weight.shape
    if k % block:
        return None
    b = weight.reshape(n, k // block, block).astype(np.float32)
    amax = np.abs(b).max(-1)
    for d in (amax / 127, (amax / 127).astype(np.float16).astype(np.float32)):
        safe = np.where(d == 0, 1, d)[..., None]
        q = np.clip(np.rint(b / safe), -127, 127)
        if np.all(np.abs(d[..., None] * q - b) <= 1e-4 * safe + 1e-12):
            return q.astype(np.int16), d
    return None


def _pack4(q: np.ndarray) -> np.ndarray:
    """[N, nb, 32] values 0..15 -> MatMulNBits' [N, nb, 16] bytes (even index in the low nibble)."""
    return (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)


def _source(node_name: str, weights) -> np.ndarray | None:
    """The HF weight(s) behind a builder MatMulNBits node, [N, K] (fused projections concatenated)."""
    match = _NODE.match(node_name)
    if not match:
        return None
    layer, block, proj = match.groups()
    parts = _FUSED.get(proj, (proj,))
    names = [f"model.layers.{layer}.{_HF_BLOCK[block]}.{p}_proj.weight" for p in parts]
    if not all(name in weights for name in names):
        return None
    return np.concatenate([weights[name] for name in names], axis=0)


def repack(onnx_dir: Path, hf_folder: Path) -> dict:
    """Rewrite the int4 model in `onnx_dir` (built from `hf_folder`) with the source's exact grids, in place.
    Returns {"exact": n, "kept": n, "head": "int8-exact" | "kept"}."""
    import onnx
    from onnx import helper, numpy_helper
    from safetensors.torch import load_file

    weights: dict[str, np.ndarray] = {}
    for path in sorted(Path(hf_folder).glob("*.safetensors")):  # via torch: numpy has no bfloat16
        weights.update({name: t.float().numpy() for name, t in load_file(str(path)).items()})
    model_path = Path(onnx_dir) / "model.onnx"
    model = onnx.load(str(model_path))
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    stats = {"exact": 0, "kept": 0, "head": "kept"}
    block_sums: dict[str, str] = {}  # input name -> its per-block sums
    selectors: dict[int, str] = {}
    nodes = []
    for node in graph.node:
        nodes.append(node)
        if node.op_type != "MatMulNBits":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("bits") != 4 or attrs.get("block_size") != BLOCK or len(node.input) != 3:
            stats["kept"] += 1  # not the builder's symmetric int4 layout: left as built
            continue
        if node.name == "/lm_head/MatMul_Q4":
            stats["head"] = _repack_head(node, graph, inits, weights)
            continue
        source = _source(node.name, weights)
        grid = grid4(source) if source is not None and source.shape == (attrs["N"], attrs["K"]) else None
        if grid is None:
            stats["kept"] += 1
            continue
        q, d, m = grid
        k = attrs["K"]
        b_init, s_init = inits[node.input[1]], inits[node.input[2]]
        b_init.CopyFrom(numpy_helper.from_array(_pack4(q).reshape(numpy_helper.to_array(b_init).shape), b_init.name))
        s_init.CopyFrom(
            numpy_helper.from_array(d.astype(np.float32).reshape(numpy_helper.to_array(s_init).shape), s_init.name)
        )
        x, y = node.input[0], node.output[0]
        if k not in selectors:
            selector = np.kron(np.eye(k // BLOCK, dtype=np.float32), np.ones((BLOCK, 1), dtype=np.float32))
            selectors[k] = f"inkwell.block_sum_{k}"
            graph.initializer.append(numpy_helper.from_array(selector, selectors[k]))
        if x not in block_sums:
            block_sums[x] = f"{x}/inkwell_block_sums"
            nodes.append(helper.make_node("MatMul", [x, selectors[k]], [block_sums[x]], name=f"{node.name}/block_sums"))
        offsets = f"{node.name}/inkwell_offsets"
        graph.initializer.append(numpy_helper.from_array((m + 8 * d).T.astype(np.float32).copy(), offsets))
        node.output[0] = f"{y}/nbits"
        nodes.append(helper.make_node("MatMul", [block_sums[x], offsets], [f"{y}/offset"], name=f"{node.name}/offset"))
        nodes.append(helper.make_node("Add", [f"{y}/nbits", f"{y}/offset"], [y], name=f"{node.name}/add_offset"))
        stats["exact"] += 1
    del graph.node[:]
    graph.node.extend(nodes)
    data = model_path.with_suffix(".onnx.data")
    data.unlink(missing_ok=True)
    onnx.save(model, str(model_path), save_as_external_data=True, all_tensors_to_one_file=True, location=data.name)
    return stats


def _repack_head(node, graph, inits, weights) -> str:
    """The tied output head / embedding as exact 8-bit blocks when the source is Q8_0."""
    from onnx import numpy_helper

    source = weights.get("lm_head.weight", weights.get("model.embed_tokens.weight"))
    grid = grid8(source) if source is not None else None
    if grid is None:
        return "kept"
    q, d = grid
    n, nb = d.shape
    packed = (q + 128).astype(np.uint8)  # MatMulNBits' 8-bit default zero point is 128
    b_name, s_name = node.input[1], node.input[2]
    inits[b_name].CopyFrom(numpy_helper.from_array(packed.reshape(n, nb, BLOCK), b_name))
    inits[s_name].CopyFrom(
        numpy_helper.from_array(d.astype(np.float32).reshape(numpy_helper.to_array(inits[s_name]).shape), s_name)
    )
    for attr in node.attribute:
        if attr.name == "bits":
            attr.i = 8
    views = {b_name}  # a tied embedding's lookup reads the same tensors, through a reshape to [N, K/2]
    for other in graph.node:
        if other.op_type == "Reshape" and other.input[0] == b_name:
            shape = f"{b_name}/inkwell_shape8"
            graph.initializer.append(numpy_helper.from_array(np.array([n, nb * BLOCK], dtype=np.int64), shape))
            other.input[1] = shape
            views.add(other.output[0])
    for other in graph.node:
        if other.op_type == "GatherBlockQuantized" and other.input[0] in views:
            zero = f"{b_name}/inkwell_zero8"
            graph.initializer.append(numpy_helper.from_array(np.full((n, nb), 128, dtype=np.uint8), zero))
            del other.input[3:]
            other.input.append(zero)
            for attr in other.attribute:
                if attr.name == "bits":
                    attr.i = 8
    return "int8-exact"
