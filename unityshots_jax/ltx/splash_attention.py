"""`attention="splash"`: the Pallas TPU splash-attention kernel for every attention of the model.

Same function as the "dense" kernel (softmax(q·kᵀ/√d + mask)·v), computed by
`jax.experimental.pallas.ops.tpu.splash_attention` per example (vmapped over batch):
- layout: ours `[batch, tokens, heads, head_dim]` → splash's `[heads, tokens, head_dim]` per example;
- scale: splash takes q·kᵀ as is, so q is multiplied by 1/√d of the real head dim first;
- head dim: zero-padded to a multiple of 128 (the TPU lane width); zero columns leave q·kᵀ unchanged and the padded
  output columns are dropped;
- lengths: queries and keys are padded to multiples of their block size (`splash_block_sizes`);
- masks: every mask the model uses hides keys per example (`AttentionMask.key_valid`), so it is expressed as segment
  ids — queries all in segment 1, a key in segment 1 when visible and 0 when hidden or padding. No `[T, T]` array,
  static or dynamic, is built; the kernel's static mask is full. ltx-core's soft per-query `bias` cannot be
  expressed this way and is refused (the story model never uses it; use "flash" for it);
- rows that see no key at all: the dense kernel gives the plain average of v over the real keys (every score sits
  at the same most-negative value); splash would average the padding too, so those rows are replaced by that mean,
  and both kernels agree on every mask.
Block sizes (`splash_block`): blocks are multiples of 128 (segment ids and the kv compute block need multiples of the
lane width); a sequence gets the largest of 512 / 384 / 256 / 128 whose padding adds at most 1/32 of its
128-aligned length — every sequence from ~12k tokens (a 22B story shot is ~23.7k) gets 512 (a 512×512 float32 score
tile is 1 MiB of VMEM), short ones (text, audio) get one block, padded by less than 128. The backward is the fused
dK/dV/dQ kernel with the same blocks. docs/design.md ("TPU: splash attention …") has the reasoning.
Interpret mode: off a TPU the Pallas kernel runs in interpret mode (XLA ops emulating the kernel): for tests only —
it is orders of magnitude slower than "flash" and never the choice of `attention="auto"`.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as splash_mask

from unityshots_jax.ltx.attention_mask import AttentionMask

LANES = 128
BLOCK_CHOICES = (512, 384, 256, 128)

_log = logging.getLogger(__name__)


class SplashMaskError(ValueError):
    """A mask the splash kernel cannot express as segment ids (a per-query soft bias)."""


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def splash_block(length: int) -> tuple[int, int]:
    """(block, padded length) for a sequence of `length` tokens: the largest of `BLOCK_CHOICES` whose padding adds
    at most 1/32 of the 128-aligned length (so long sequences always get 512, short ones pad less than 128)."""
    aligned = _round_up(max(length, 1), LANES)
    block = next(b for b in BLOCK_CHOICES if _round_up(aligned, b) <= aligned + aligned // 32)
    return block, _round_up(aligned, block)


def splash_block_sizes(tq: int, tk: int) -> splash.BlockSizes:
    """Forward and fused-backward block sizes for `tq` queries and `tk` keys."""
    bq, bk = splash_block(tq)[0], splash_block(tk)[0]
    return splash.BlockSizes(
        block_q=bq, block_kv=bk, block_kv_compute=bk,
        block_q_dkv=bq, block_kv_dkv=bk, block_kv_dkv_compute=bk, use_fused_bwd_kernel=True,
    )


@functools.lru_cache(maxsize=64)
def _kernel(heads: int, tq: int, tk: int, interpret: bool) -> splash.SplashAttentionKernel:
    """The splash kernel for padded lengths (its mask information is host data, built once per shape)."""
    mask = splash_mask.MultiHeadMask([splash_mask.FullMask((tq, tk))] * heads)
    with jax.ensure_compile_time_eval():
        return splash.make_splash_mha(mask, block_sizes=splash_block_sizes(tq, tk), head_shards=1, q_seq_shards=1,
                                      interpret=interpret)


def _pad_axis(x: jnp.ndarray, axis: int, size: int) -> jnp.ndarray:
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return jnp.pad(x, pad)


@functools.lru_cache(maxsize=None)
def _warn_interpret(backend: str) -> None:
    _log.warning("attention='splash' on %s runs the Pallas kernel in interpret mode: for tests only (slow)", backend)


def splash_attention(q: jnp.ndarray, k: jnp.ndarray, v: jnp.ndarray, mask: AttentionMask | None,
                     interpret: bool | None = None) -> jnp.ndarray:
    """q `[b, tq, h, d]`, k / v `[b, tk, h, d]`, mask (key_valid `[b, tk]` only) → `[b, tq, h, d]` in v's dtype.

    interpret: None runs the compiled kernel on a TPU and interpret mode elsewhere (tests only)."""
    if mask is not None and mask.bias is not None:
        raise SplashMaskError("attention='splash': a per-query soft attention mask (StreamInput.attention_mask) "
                              "cannot be expressed as segment ids; use attention='flash' for it")
    if interpret is None:
        backend = jax.default_backend()
        interpret = backend != "tpu"
        if interpret:
            _warn_interpret(backend)
    b, tq, h, d = q.shape
    tk = k.shape[1]
    _, tq_pad = splash_block(tq)
    _, tk_pad = splash_block(tk)
    d_pad = _round_up(d, LANES)
    scaled = q * jnp.asarray(d ** -0.5, q.dtype)
    heads_major = lambda x, t: _pad_axis(_pad_axis(x, 3, d_pad), 1, t).transpose(0, 2, 1, 3)  # noqa: E731
    qh, kh, vh = heads_major(scaled, tq_pad), heads_major(k, tk_pad), heads_major(v, tk_pad)
    kernel = _kernel(h, tq_pad, tk_pad, interpret)
    if (mask is None or mask.key_valid is None) and tk == tk_pad:  # every key visible: no segment ids at all
        out = jax.vmap(kernel)(qh, kh, vh)
    else:
        real = jnp.arange(tk_pad)[None, :] < tk
        visible = real if mask is None or mask.key_valid is None else real & (_pad_axis(mask.key_valid, 1, tk_pad) > 0)
        kv_ids = jnp.broadcast_to(visible, (b, tk_pad)).astype(jnp.int32)
        out = jax.vmap(kernel)(qh, kh, vh, splash.SegmentIds(q=jnp.ones((b, tq_pad), jnp.int32), kv=kv_ids))
    out = out.transpose(0, 2, 1, 3)[:, :tq, :, :d].astype(v.dtype)
    if mask is None or mask.key_valid is None:
        return out
    sees_any = jnp.any(mask.key_valid > 0, axis=1)[:, None, None, None]
    mean_v = jnp.mean(v.astype(jnp.float32), axis=1, keepdims=True).astype(v.dtype)
    return jnp.where(sees_any, out, mean_v)


def splash_kernel(interpret: bool | None = None):
    """The "splash" `AttentionFn` (see `splash_attention`)."""
    return functools.partial(splash_attention, interpret=interpret)
