"""Attention cores: softmax(q·kᵀ/√d + bias)·v over `[batch, tokens, heads, head_dim]` arrays.

One registry, one `kind` string from `ExecutionConfig.attention`; every kernel computes the same function:
- "dense":   two einsums and a float32 softmax; materialises `[batch, heads, q, k]` scores.
- "chunked": the same, queries in chunks (`lax.map`), so only `[batch, heads, chunk, k]` scores live at once;
             measured ~2x faster than dense on CPU (experiments/RESULTS.md).
- "xla" / "cudnn": `jax.nn.dot_product_attention` with that implementation (cudnn: GPU, bf16/fp16 only).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

AttentionFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray, "jnp.ndarray | None"], jnp.ndarray]


def _dense(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
    """q `[b, tq, h, d]`, k/v `[b, tk, h, d]`, bias broadcastable to `[b, h, tq, tk]` → `[b, tq, h, d]`."""
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    if bias is not None:
        scores = scores + bias.astype(jnp.float32)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v, preferred_element_type=jnp.float32).astype(v.dtype)


def _chunked(chunk: int) -> AttentionFn:
    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
        b, tq, h, d = q.shape
        if tq <= chunk:
            return _dense(q, k, v, bias)
        n = -(-tq // chunk)
        pad = n * chunk - tq
        qp = jnp.pad(q, ((0, 0), (0, pad), (0, 0), (0, 0))).reshape(b, n, chunk, h, d).swapaxes(0, 1)
        if bias is None or bias.shape[-2] == 1:
            out = jax.lax.map(lambda qc: _dense(qc, k, v, bias), qp)
        else:
            bias_full = jnp.broadcast_to(bias, (bias.shape[0], bias.shape[1], tq, bias.shape[-1]))
            bp = jnp.pad(bias_full, ((0, 0), (0, 0), (0, pad), (0, 0)))
            bp = bp.reshape(bias.shape[0], bias.shape[1], n, chunk, -1).transpose(2, 0, 1, 3, 4)
            out = jax.lax.map(lambda args: _dense(args[0], k, v, args[1]), (qp, bp))
        return out.swapaxes(0, 1).reshape(b, n * chunk, h, d)[:, :tq]

    return attend


def _library(implementation: str) -> AttentionFn:
    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
        if bias is not None:
            bias = jnp.broadcast_to(bias, (q.shape[0], q.shape[2], q.shape[1], k.shape[1])).astype(q.dtype)
        return jax.nn.dot_product_attention(q, k, v, bias=bias, implementation=implementation)

    return attend


def attention_kernel(kind: str, chunk: int = 256) -> AttentionFn:
    """The attention core named `kind` ("dense", "chunked", "xla", "cudnn")."""
    if kind == "dense":
        return _dense
    if kind == "chunked":
        return _chunked(chunk)
    if kind in ("xla", "cudnn"):
        return _library(kind)
    raise ValueError(f"attention: unknown kernel {kind!r}; expected dense, chunked, xla or cudnn")
