"""LoRA on the backbone's attention and feed-forward kernels, as a pure transform of the parameter tree.

For each targeted kernel W `[layers, in, out]` (stacked blocks) the adapter holds A `[layers, in, r]` (random,
σ = 1/r) and B `[layers, r, out]` (zero), and the forward uses W + (alpha / r)·A·B — so training starts from the
base model exactly, and `merge` folds the adapter in for export.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out", "proj_in", "proj_out")


def _targets(blocks: dict, names: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Paths (inside `blocks`) of the kernels to adapt: attention projections and feed-forward layers."""
    found = []

    def walk(node, path):
        for key, value in node.items():
            if isinstance(value, dict):
                if key in names and "kernel" in value:
                    found.append(path + (key,))
                else:
                    walk(value, path + (key,))

    walk(blocks, ())
    return sorted(found)


def init_lora(backbone: dict, key: jax.Array, rank: int, targets: tuple[str, ...] = DEFAULT_TARGETS) -> dict:
    """Adapters for the backbone's pure-dict parameters: {"a": {...}, "b": {...}} mirroring the kernels' paths."""
    paths = _targets(backbone["blocks"], targets)
    if not paths:
        raise ValueError(f"lora: no kernels named {targets} in the backbone")
    a, b = {}, {}
    for i, path in enumerate(paths):
        w = backbone["blocks"]
        for part in path:
            w = w[part]
        layers, fan_in, fan_out = w["kernel"].shape
        name = "/".join(path)
        a[name] = jax.random.normal(jax.random.fold_in(key, i), (layers, fan_in, rank), jnp.float32) / rank
        b[name] = jnp.zeros((layers, rank, fan_out), jnp.float32)
    return {"a": a, "b": b}


def apply_lora(backbone: dict, lora: dict, alpha: float) -> dict:
    """The backbone tree with W + (alpha / r)·A·B in every adapted kernel (other leaves shared, not copied)."""
    out = dict(backbone)
    blocks = jax.tree.map(lambda x: x, backbone["blocks"])  # shallow structural copy
    for name, a in lora["a"].items():
        b = lora["b"][name]
        node = blocks
        *parents, leaf = name.split("/")
        for part in parents:
            node = node[part]
        w = node[leaf]["kernel"]
        scale = alpha / a.shape[-1]
        node[leaf] = dict(node[leaf], kernel=(w + scale * jnp.einsum("lir,lro->lio", a, b)).astype(w.dtype))
    out["blocks"] = blocks
    return out
