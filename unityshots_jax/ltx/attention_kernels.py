"""Attention cores: softmax(q·kᵀ/√d + mask)·v over `[batch, tokens, heads, head_dim]` arrays.

One registry, one `kind` string from `ExecutionConfig.attention`; every kernel computes the same function and
takes the mask as an `AttentionMask` (visible keys per example, plus an optional soft per-query bias):
- "dense":   two einsums and a float32 softmax; materialises `[batch, heads, q, k]` scores.
- "chunked": the same, queries in chunks (`lax.map`), so only `[batch, heads, chunk, k]` scores live at once.
- "flash":   blocked kernel in `[batch, heads, tokens, head_dim]` layout: queries in chunks of `chunk`, keys in
             tiles of `KEY_TILE` with an online softmax (one tile, i.e. a plain row softmax, up to `KEY_TILE`
             keys), normalisation applied to the `[chunk, head_dim]` output, not to the probabilities; a
             `custom_vjp` saves only the output and the row log-sum-exp and recomputes the probabilities in the
             backward pass. The fastest on CPU (experiments/RESULTS.md).
- "xla" / "cudnn": `jax.nn.dot_product_attention` with that implementation (cudnn: GPU, bf16/fp16 only).
- "splash":  the Pallas TPU splash-attention kernel, masks as segment ids (ltx/splash_attention.py); on other
             backends it runs in Pallas interpret mode, which is for tests only.
- "auto":    resolved once per backend by `resolve_attention`: splash on TPU, cudnn on GPU (flash for float32, which
             cuDNN does not take), flash on CPU.
Inside an active mesh (`sharding.use_mesh`), `transformer.forward` runs the kernel per shard with K/V gathered over
the context axis (ltx/context_parallel.py).
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import jax
import jax.numpy as jnp

from unityshots_jax.ltx.attention_mask import AttentionMask
from unityshots_jax.ltx.config import ATTENTION_CHOICES

AttentionFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray, "AttentionMask | None"], jnp.ndarray]

KERNELS = tuple(k for k in ATTENTION_CHOICES if k != "auto")
KEY_TILE = 4096  # keys per online-softmax tile of "flash"; sequences up to this length use one exact row softmax

_log = logging.getLogger(__name__)


def _dense(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
    """q `[b, tq, h, d]`, k/v `[b, tk, h, d]`, bias broadcastable to `[b, h, tq, tk]` → `[b, tq, h, d]`."""
    scale = q.shape[-1] ** -0.5
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, preferred_element_type=jnp.float32) * scale
    if bias is not None:
        scores = scores + bias.astype(jnp.float32)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bkhd->bqhd", probs, v, preferred_element_type=jnp.float32).astype(v.dtype)


def _chunked(chunk: int) -> Callable:
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


# ---------------------------------------------------------------------------------------------------- flash
# Internal layout: q `[b, h, tq, d]` (already scaled by 1/√d), k / v `[b, h, tk, d]`, bias `[bb, bh, bq, tk]` float32
# with bb ∈ {1, b}, bh ∈ {1, h}, bq ∈ {1, tq}. Scores and softmax statistics are float32; the probabilities are cast
# to v's dtype for the second matmul (as "dense" does).


def _scores(qc: jnp.ndarray, kt: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
    s = jnp.einsum("bhqd,bhkd->bhqk", qc, kt, preferred_element_type=jnp.float32)
    return s if bias is None else s + bias


def _key_tiles(x: jnp.ndarray, tile: int, axis: int) -> jnp.ndarray:
    """Split `axis` (padded to a multiple of `tile`) into leading tiles: `[n, ..., tile, ...]`."""
    n = -(-x.shape[axis] // tile)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, n * tile - x.shape[axis])
    x = jnp.pad(x, pad)
    x = x.reshape(x.shape[:axis] + (n, tile) + x.shape[axis + 1 :])
    return jnp.moveaxis(x, axis, 0)


def _tile_bias(bias: jnp.ndarray | None, tk: int, tile: int) -> jnp.ndarray | None:
    """Bias split into key tiles; padded keys get a large negative bias so they carry no weight."""
    if tk % tile == 0:
        return None if bias is None else _key_tiles(bias, tile, 3)
    base = jnp.zeros((1, 1, 1, tk), jnp.float32) if bias is None else bias
    pad = [(0, 0)] * 3 + [(0, -(-tk // tile) * tile - tk)]
    return jnp.moveaxis(jnp.pad(base, pad, constant_values=-1e30).reshape(base.shape[:3] + (-1, tile)), 3, 0)


def _chunk_fwd(qc, k, v, bias, tile):
    """One query chunk against all keys → (output `[b, h, c, d]` in v's dtype, row log-sum-exp `[b, h, c]`)."""
    tk = k.shape[2]
    if tk <= tile:
        s = _scores(qc, k, bias)
        m = jnp.max(s, axis=-1, keepdims=True)
        p = jnp.exp(s - m)
        l = jnp.sum(p, axis=-1, keepdims=True)
        o = jnp.einsum("bhqk,bhkd->bhqd", p.astype(v.dtype), v, preferred_element_type=jnp.float32)
        return (o / l).astype(v.dtype), (m + jnp.log(l))[..., 0]
    kt, vt, bt = _key_tiles(k, tile, 2), _key_tiles(v, tile, 2), _tile_bias(bias, tk, tile)
    b, h, c, d = qc.shape

    def step(carry, xs):
        m, l, acc = carry
        s = _scores(qc, xs[0], None if bt is None else xs[2])
        m_new = jnp.maximum(m, jnp.max(s, axis=-1, keepdims=True))
        p = jnp.exp(s - m_new)
        alpha = jnp.exp(m - m_new)
        acc = acc * alpha + jnp.einsum("bhqk,bhkd->bhqd", p.astype(v.dtype), xs[1], preferred_element_type=jnp.float32)
        return (m_new, l * alpha + jnp.sum(p, axis=-1, keepdims=True), acc), None

    init = (jnp.full((b, h, c, 1), -jnp.inf, jnp.float32), jnp.zeros((b, h, c, 1), jnp.float32),
            jnp.zeros((b, h, c, d), jnp.float32))
    (m, l, acc), _ = jax.lax.scan(step, init, (kt, vt) if bt is None else (kt, vt, bt))
    return (acc / l).astype(v.dtype), (m + jnp.log(l))[..., 0]


def _query_chunks(x: jnp.ndarray | None, chunk: int, n: int) -> jnp.ndarray | None:
    """`[b, h, tq, ...]` → `[n, b, h, chunk, ...]` (padded); None, or a bias with one query row, stays as is."""
    if x is None or x.shape[2] == 1:
        return x
    return _key_tiles(x, chunk, 2)[:n]


def _flash_fwd_core(q, k, v, bias, chunk, tile):
    b, h, tq, d = q.shape
    if tq <= chunk:
        return _chunk_fwd(q, k, v, bias, tile)
    n = -(-tq // chunk)
    qs = _query_chunks(q, chunk, n)
    per_row = bias is not None and bias.shape[2] > 1
    xs = (qs, _query_chunks(bias, chunk, n)) if per_row else (qs,)
    out, lse = jax.lax.map(lambda a: _chunk_fwd(a[0], k, v, a[1] if per_row else bias, tile), xs)
    out = jnp.moveaxis(out, 0, 2).reshape(b, h, n * chunk, d)[:, :, :tq]
    return out, jnp.moveaxis(lse, 0, 2).reshape(b, h, n * chunk)[:, :, :tq]


def _reduce_to(x: jnp.ndarray, shape: tuple[int, ...]) -> jnp.ndarray:
    """Sum a `[b, h, c, k]` cotangent down to a broadcast `shape` (keeping dims)."""
    axes = tuple(i for i, (a, s) in enumerate(zip(x.shape, shape)) if s == 1 and a != 1)
    return jnp.sum(x, axis=axes, keepdims=True) if axes else x


def _chunk_bwd(qc, k, v, bias, lse, do, delta, tile, bias_shape):
    """Gradients of one query chunk: (dq `[b,h,c,d]`, dk, dv `[b,h,tk,d]` float32, dbias reduced or None)."""
    tk = k.shape[2]
    kt, vt = (k[None], v[None]) if tk <= tile else (_key_tiles(k, tile, 2), _key_tiles(v, tile, 2))
    bt = (None if bias is None else bias[None]) if tk <= tile else _tile_bias(bias, tk, tile)
    do_v = do.astype(v.dtype)

    def step(dq, xs):
        s = _scores(qc, xs[0], None if bt is None else xs[2])
        p = jnp.exp(s - lse[..., None])
        dv = jnp.einsum("bhqk,bhqd->bhkd", p.astype(v.dtype), do_v, preferred_element_type=jnp.float32)
        dp = jnp.einsum("bhqd,bhkd->bhqk", do_v, xs[1], preferred_element_type=jnp.float32)
        ds = p * (dp - delta[..., None])
        dq = dq + jnp.einsum("bhqk,bhkd->bhqd", ds.astype(qc.dtype), xs[0], preferred_element_type=jnp.float32)
        dk = jnp.einsum("bhqk,bhqd->bhkd", ds.astype(qc.dtype), qc, preferred_element_type=jnp.float32)
        db = None if bias_shape is None else _reduce_to(ds, bias_shape[:3] + (ds.shape[3],))
        return dq, (dk, dv, db)

    dq0 = jnp.zeros(qc.shape, jnp.float32)
    xs = (kt, vt) if bt is None else (kt, vt, bt)
    if kt.shape[0] == 1:
        dq, (dk, dv, db) = step(dq0, jax.tree.map(lambda x: x[0], xs))
        return dq, dk, dv, db
    dq, (dk, dv, db) = jax.lax.scan(step, dq0, xs)
    untile = lambda x: jnp.moveaxis(x, 0, 2).reshape(x.shape[1:3] + (-1, x.shape[-1]))[:, :, :tk]  # noqa: E731
    db = None if db is None else jnp.moveaxis(db, 0, 3).reshape(db.shape[1:4] + (-1,))[..., :tk]
    return dq, untile(dk), untile(dv), db


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _flash(q, k, v, bias, chunk, tile):
    return _flash_fwd_core(q, k, v, bias, chunk, tile)[0]


def _flash_fwd(q, k, v, bias, chunk, tile):
    out, lse = _flash_fwd_core(q, k, v, bias, chunk, tile)
    return out, (q, k, v, bias, out, lse)


def _flash_bwd(chunk, tile, res, g):
    q, k, v, bias, out, lse = res
    b, h, tq, d = q.shape
    delta = jnp.sum(g.astype(jnp.float32) * out.astype(jnp.float32), axis=-1)
    bias_shape = None if bias is None else bias.shape
    if tq <= chunk:
        dq, dk, dv, db = _chunk_bwd(q, k, v, bias, lse, g, delta, tile, bias_shape)
    else:
        n = -(-tq // chunk)
        per_row = bias is not None and bias.shape[2] > 1
        xs = tuple(_query_chunks(x, chunk, n) for x in (q, lse[..., None], g, delta[..., None]))
        xs = xs + ((_query_chunks(bias, chunk, n),) if per_row else ())

        def step(carry, a):
            dq, dkc, dvc, dbc = _chunk_bwd(a[0], k, v, a[4] if per_row else bias, a[1][..., 0], a[2], a[3][..., 0],
                                           tile, bias_shape)
            dk, dv, db = carry
            if db is not None and not per_row:
                db = db + dbc
            return (dk + dkc, dv + dvc, db), (dq, dbc if per_row else None)

        db0 = None if bias is None or per_row else jnp.zeros(bias.shape, jnp.float32)
        zeros = jnp.zeros(k.shape, jnp.float32)
        (dk, dv, db), (dqs, dbs) = jax.lax.scan(step, (zeros, zeros, db0), xs)
        dq = jnp.moveaxis(dqs, 0, 2).reshape(b, h, n * chunk, d)[:, :, :tq]
        if per_row:
            db = jnp.moveaxis(dbs, 0, 2).reshape(dbs.shape[1:3] + (n * chunk, -1))[:, :, :tq]
    cast = lambda x, like: None if like is None else x.astype(like.dtype)  # noqa: E731
    return cast(dq, q), cast(dk, k), cast(dv, v), cast(db, bias)


_flash.defvjp(_flash_fwd, _flash_bwd)


def _flash_kernel(chunk: int, tile: int = KEY_TILE) -> Callable:
    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
        scale = q.shape[-1] ** -0.5
        qh = (q * jnp.asarray(scale, q.dtype)).transpose(0, 2, 1, 3)
        if bias is not None:
            bias = bias.astype(jnp.float32)
            bias = bias.reshape((1,) * (4 - bias.ndim) + bias.shape)
        out = _flash(qh, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), bias, chunk, tile)
        return out.transpose(0, 2, 1, 3)

    return attend


def _library(implementation: str) -> Callable:
    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, bias: jnp.ndarray | None) -> jnp.ndarray:
        # The bias stays in its broadcastable shape ([b, 1, 1, k] for padding masks): broadcasting it to
        # [b, heads, q, k] first cost 33.6 GiB per attention at 23.7k tokens (experiments/RESULTS.md, 22B plan).
        if bias is not None:
            bias = bias.astype(q.dtype)
        return jax.nn.dot_product_attention(q, k, v, bias=bias, implementation=implementation)

    return attend


def _with_bias(core: Callable) -> AttentionFn:
    """A kernel over an additive bias, called with an `AttentionMask` (turned into a broadcastable bias)."""

    def attend(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, mask: AttentionMask | None) -> jnp.ndarray:
        return core(q, k, v, None if mask is None else mask.additive(q.dtype))

    return attend


@functools.lru_cache(maxsize=None)
def resolve_attention(name: str, backend: str, dtype: str = "bfloat16") -> str:
    """The concrete kernel for `name` on `backend` ("cpu" / "gpu" / "tpu", as `jax.default_backend()`) running
    activations of `dtype`: "auto" → splash on TPU, cudnn on GPU (flash for float32, which cuDNN refuses), flash
    elsewhere; any other name is returned as is. The choice is logged once per (name, backend, dtype)."""
    if name not in ATTENTION_CHOICES:
        raise ValueError(f"attention: unknown kernel {name!r}; expected one of {', '.join(ATTENTION_CHOICES)}")
    if name != "auto":
        return name
    if backend == "tpu":
        kind = "splash"
    elif backend in ("gpu", "cuda", "rocm"):
        kind = "cudnn" if dtype in ("bfloat16", "float16") else "flash"
    else:
        kind = "flash"
    _log.info("attention='auto' on %s with %s activations: using the %r kernel", backend, dtype, kind)
    return kind


def attention_kernel(kind: str, chunk: int = 256) -> AttentionFn:
    """The attention core named `kind` (one of `KERNELS`, or "auto" resolved for the default backend in float32);
    `chunk` is the query chunk of "chunked" / "flash"."""
    if kind == "auto":
        kind = resolve_attention(kind, jax.default_backend(), "float32")
    if kind == "dense":
        return _with_bias(_dense)
    if kind == "chunked":
        return _with_bias(_chunked(chunk))
    if kind == "flash":
        return _with_bias(_flash_kernel(chunk))
    if kind in ("xla", "cudnn"):
        return _with_bias(_library(kind))
    if kind == "splash":
        from unityshots_jax.ltx.splash_attention import splash_kernel  # Pallas imports only when asked for

        return splash_kernel()
    raise ValueError(f"attention: unknown kernel {kind!r}; expected one of {', '.join(KERNELS)}")
