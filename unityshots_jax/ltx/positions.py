"""RoPE positions of LTX latent tokens, in LTX's units (ltx-core's `VideoLatentTools` / `AudioLatentTools`).

Video: a latent frame `f` covers pixel frames `[f·T + 1 − T, f·T + 1)` clamped at 0 (the causal fix: the first
latent frame stands for one pixel frame), divided by the frame rate → seconds; a latent row/column `i` covers pixels
`[i·S, (i + 1)·S)`. Audio: latent `i` covers mel frames `[i·D − (D − 1), (i + 1)·D − (D − 1))` clamped at 0, times
the mel hop in seconds. Positions are `[start, end)` pairs; tokens are in patchified order (frame, row, column).
"""

from __future__ import annotations

import jax.numpy as jnp


def video_positions(frame_index: jnp.ndarray, height: int, width: int, *, fps: float, temporal_scale: int = 8,
                    spatial_scale: int = 32) -> jnp.ndarray:
    """frame_index `[batch, frames]` (float latent-frame indices) → positions `[batch, 3, frames·height·width, 2]`
    (seconds, px, px) float32, for a latent grid of `height × width` per frame."""
    b, _ = frame_index.shape
    ts, sp = temporal_scale, spatial_scale
    start = jnp.maximum(frame_index * ts + 1 - ts, 0.0) / fps
    end = (frame_index * ts + 1) / fps
    t = jnp.stack([start, end], -1)[:, :, None, None, :]
    hh = jnp.arange(height, dtype=jnp.float32)[:, None] * sp
    ww = jnp.arange(width, dtype=jnp.float32)[:, None] * sp
    h = jnp.concatenate([hh, hh + sp], -1)[None, None, :, None, :]
    w = jnp.concatenate([ww, ww + sp], -1)[None, None, None, :, :]
    shape = (b, frame_index.shape[1], height, width, 2)
    axes = [jnp.broadcast_to(a, shape).reshape(b, -1, 2) for a in (t, h, w)]
    return jnp.stack(axes, axis=1).astype(jnp.float32)


def audio_positions(latent_index: jnp.ndarray, *, downsample: int = 4, hop_seconds: float = 0.01) -> jnp.ndarray:
    """latent_index `[batch, frames]` → positions `[batch, 1, frames, 2]` in seconds (float32)."""
    d = downsample
    start = jnp.maximum(latent_index * d - (d - 1), 0.0) * hop_seconds
    end = jnp.maximum((latent_index + 1) * d - (d - 1), 0.0) * hop_seconds
    return jnp.stack([start, end], -1)[:, None].astype(jnp.float32)
