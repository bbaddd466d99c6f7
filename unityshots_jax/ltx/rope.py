"""Rotary position embeddings of LTX-2 (split and interleaved layouts).

The frequency grid is built on the host in NumPy float64 and cast to float32 (JAX x64 is off, so `jnp.float64`
would silently be float32: the trap maxdiffusion fell into). Positions become angles in the positions' own dtype
up to the fractional position (bf16 video positions in the pipelines stay bf16 there, as in ltx-core), then in
float32; cos and sin are cast to the activation dtype.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class RopeTables:
    """cos/sin tables for one attention input.

    split:       cos, sin `[batch, tokens, heads, head_dim // 2]` (head h gets its own slice of frequencies)
    interleaved: cos, sin `[batch, tokens, inner_dim]` (applied over the full inner dim before the head split)
    """

    cos: jnp.ndarray
    sin: jnp.ndarray
    split: bool = struct.field(pytree_node=False, default=True)


@functools.lru_cache(maxsize=32)
def frequency_grid(theta: float, n_axes: int, dim: int, double_precision: bool) -> np.ndarray:
    """Base angular frequencies `[dim // (2 * n_axes)]`, float32: (π/2)·θ^(k/(F−1)) for k = 0..F−1.

    double_precision: computed in float64 then rounded (`frequencies_precision: float64`, LTX-2.3); otherwise in
    float32 arithmetic throughout, as ltx-core's torch grid does.
    """
    count = dim // (2 * n_axes)
    if double_precision:
        exps = np.linspace(0.0, 1.0, count, dtype=np.float64)
        return (np.power(np.float64(theta), exps) * math.pi / 2).astype(np.float32)
    # float32 path, reproducing torch's CPU arithmetic: linspace takes a float32 step and rounds
    # start + step*i (first half) / end - step*(n-1-i) (second half) once; pow rounds once; then ×π and /2.
    i = np.arange(count, dtype=np.float64)
    step = np.float64(np.float32(1.0) / np.float32(max(count - 1, 1)))
    exps = np.where(i < count // 2, step * i, 1.0 - step * (count - 1 - i)).astype(np.float32)
    grid = np.power(np.float64(np.float32(theta)), exps.astype(np.float64)).astype(np.float32)
    return (grid * np.float32(math.pi)) / np.float32(2)


def _angles(positions: jnp.ndarray, grid: np.ndarray, max_pos: tuple[int, ...], middle: bool) -> jnp.ndarray:
    """positions `[batch, n_axes, tokens, 2]` ([start, end) bounds) → angles `[batch, tokens, F * n_axes]`.

    Flattened frequency-major: [f0·ax0, f0·ax1, f0·ax2, f1·ax0, …].
    """
    if positions.ndim != 4 or positions.shape[-1] != 2:
        raise ValueError(f"positions: expected [batch, n_axes, tokens, 2], got {positions.shape}")
    if positions.shape[1] != len(max_pos):
        raise ValueError(f"positions: {positions.shape[1]} axes but max_pos has {len(max_pos)}")
    coords = (positions[..., 0] + positions[..., 1]) / 2.0 if middle else positions[..., 0]
    frac = jnp.stack([coords[:, i] / max_pos[i] for i in range(len(max_pos))], axis=-1)  # [b, t, n]
    scaled = frac * 2 - 1  # stays in the positions' dtype, as in the reference
    ang = jnp.asarray(grid)[None, None, :, None] * scaled[:, :, None, :].astype(jnp.float32)  # [b, t, F, n]
    return ang.reshape(ang.shape[0], ang.shape[1], -1)


def rope_tables(
    positions: jnp.ndarray,
    *,
    dim: int,
    heads: int,
    max_pos: tuple[int, ...],
    theta: float,
    rope_type: str,
    double_precision: bool,
    dtype: jnp.dtype,
    middle: bool = True,
) -> RopeTables:
    """cos/sin tables for queries or keys of inner width `dim` split over `heads`.

    positions: `[batch, n_axes, tokens, 2]` in seconds (time) and pixels (space).
    """
    n_axes = positions.shape[1]
    grid = frequency_grid(float(theta), n_axes, dim, double_precision)
    ang = _angles(positions, grid, max_pos, middle)
    cos, sin = jnp.cos(ang), jnp.sin(ang)
    b, t, _ = ang.shape
    if rope_type == "split":
        pad = dim // 2 - ang.shape[-1]
        if pad:
            cos = jnp.concatenate([jnp.ones((b, t, pad), cos.dtype), cos], axis=-1)
            sin = jnp.concatenate([jnp.zeros((b, t, pad), sin.dtype), sin], axis=-1)
        cos = cos.reshape(b, t, heads, dim // (2 * heads))
        sin = sin.reshape(b, t, heads, dim // (2 * heads))
        return RopeTables(cos.astype(dtype), sin.astype(dtype), split=True)
    cos = jnp.repeat(cos, 2, axis=-1)
    sin = jnp.repeat(sin, 2, axis=-1)
    pad = dim % (2 * n_axes)
    if pad:
        cos = jnp.concatenate([jnp.ones((b, t, pad), cos.dtype), cos], axis=-1)
        sin = jnp.concatenate([jnp.zeros((b, t, pad), sin.dtype), sin], axis=-1)
    return RopeTables(cos.astype(dtype), sin.astype(dtype), split=False)


def apply_rope(x: jnp.ndarray, tables: RopeTables) -> jnp.ndarray:
    """Rotate `x` `[batch, tokens, heads, head_dim]` by the tables; returns the same shape."""
    if tables.split:
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return jnp.concatenate([x1 * tables.cos - tables.sin * x2, x2 * tables.cos + tables.sin * x1], axis=-1)
    b, t, h, d = x.shape
    flat = x.reshape(b, t, h * d)
    pairs = flat.reshape(b, t, h * d // 2, 2)
    rotated = jnp.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(b, t, h * d)
    return (flat * tables.cos + rotated * tables.sin).reshape(b, t, h, d)
