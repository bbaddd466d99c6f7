"""Attention over a context-sharded token axis, done explicitly: the kernel runs per shard in `jax.shard_map`, each
shard's queries against all keys, K/V all-gathered over the context mesh axis.

Inside an active mesh (`sharding.use_mesh`) `sharded_attention(kernel)` wraps any `AttentionFn`:
- q `[batch, tq, heads, d]` enters split as the model constrains it: batch over the mesh axes of
  "activation_batch", tokens over those of "activation_length" (the context axis), heads over "activation_heads";
- k / v `[batch, tk, heads, d]` and the visible-key mask `[batch, tk]` enter split the same way (tokens over context)
  and are all-gathered inside (`all_gather(tiled=True)`); the all-gather's transpose makes dK / dV a reduce-scatter
  back onto the shards. Every collective of the attention is these two gathers and their reduce-scatters —
  nothing is left to the partitioner's choice, and Pallas kernels (splash), which the partitioner cannot split,
  run on local blocks;
- ltx-core's soft per-query bias `[batch, 1, tq or 1, tk]` is split over batch and query rows, whole over keys.
Batch or heads that do not divide over their mesh axes stay whole on every shard; token axes are padded to a
multiple of the context size (padded keys hidden, padded query rows dropped). Outside a mesh the kernel is returned
as is. Why all-gather and not a ring: docs/design.md ("TPU: splash attention …").
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from unityshots_jax import sharding
from unityshots_jax.ltx.attention_kernels import AttentionFn
from unityshots_jax.ltx.attention_mask import AttentionMask

Q_AXES = ("activation_batch", "activation_length", "activation_heads", None)


def active_mesh() -> tuple[Mesh, tuple] | None:
    """(mesh, logical rules) of the enclosing `sharding.use_mesh`, or None outside one."""
    return sharding.active()


def _axes(entry) -> tuple[str, ...]:
    return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


def _entry(axes: tuple[str, ...]):
    return None if not axes else axes[0] if len(axes) == 1 else axes


def _pad(x: jnp.ndarray, axis: int, size: int, value=0) -> jnp.ndarray:
    if x.shape[axis] == size:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad, constant_values=value)


def sharded_attention(kernel: AttentionFn) -> AttentionFn:
    """`kernel` run per shard with K/V gathered over context when a mesh is active; `kernel` itself otherwise."""
    active = active_mesh()
    if active is None:
        return kernel
    mesh, rules = active
    spec = sharding.logical_to_spec(Q_AXES, rules)
    batch_axes, ctx_axes, head_axes = (_axes(spec[i]) for i in range(3))
    size = lambda axes: math.prod(mesh.shape[a] for a in axes)  # noqa: E731
    n_ctx = size(ctx_axes)

    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, mask: AttentionMask | None) -> jnp.ndarray:
        b, tq, h, _ = q.shape
        tk = k.shape[1]
        bat = _entry(batch_axes if b % size(batch_axes) == 0 else ())
        hd = _entry(head_axes if h % size(head_axes) == 0 else ())
        ctx = _entry(ctx_axes)
        tq_pad, tk_pad = -(-tq // n_ctx) * n_ctx, -(-tk // n_ctx) * n_ctx
        key_valid = None if mask is None else mask.key_valid
        if tk_pad != tk and key_valid is None:
            key_valid = jnp.ones((b, tk), jnp.int32)
        bias = None if mask is None else mask.bias
        rows = bias is not None and bias.shape[2] > 1
        args = [_pad(q, 1, tq_pad), _pad(k, 1, tk_pad), _pad(v, 1, tk_pad)]
        specs = [PartitionSpec(bat, ctx, hd, None)] * 3
        if key_valid is not None:
            args.append(_pad(key_valid, 1, tk_pad))
            specs.append(PartitionSpec(bat, ctx))
        if bias is not None:
            bias = _pad(_pad(bias, 3, tk_pad), 2, tq_pad) if rows else _pad(bias, 3, tk_pad)
            args.append(bias)
            specs.append(PartitionSpec(bat if bias.shape[0] == b else None, None, ctx if rows else None, None))

        def local(q, k, v, *extra):
            def gather(x):
                return jax.lax.all_gather(x, ctx_axes, axis=1, tiled=True) if ctx_axes else x

            valid = gather(extra[0]) if key_valid is not None else None
            local_bias = extra[-1] if bias is not None else None
            local_mask = None if valid is None and local_bias is None else AttentionMask(valid, local_bias)
            return kernel(q, gather(k), gather(v), local_mask)

        out = jax.shard_map(local, mesh=mesh, in_specs=tuple(specs), out_specs=specs[0], check_vma=False)(*args)
        return out[:, :tq]

    return attend
