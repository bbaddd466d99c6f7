"""The state carried across shots: constant-size memory, whatever the number of shots.

Memory lives in (normalised) VAE latent space, `[batch, frames, height, width, channels]`:
  ltm   the long-term slot (2 frames), anchored to the opening shot, then the bounded recurrence of Eq. 3;
  tail  the previous shot's last P = 4 frames: the short-term slot's source;
  prev_pool the previous shot's pooled latent `[batch, channels]` (input of the content-aware gate);
  shots_done how many shots each story has finished `[batch]`.
The stored slots are unscaled; the gates scale the copies that enter the transformer.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from unityshots_jax.story.boundary_gate import ltm_write_weight
from unityshots_jax.story.story_config import StoryConfig


@struct.dataclass
class StoryState:
    ltm: jnp.ndarray
    tail: jnp.ndarray
    prev_pool: jnp.ndarray
    shots_done: jnp.ndarray

    @property
    def has_memory(self) -> jnp.ndarray:
        """`[batch]` bool: the slots hold something (every shot after the first)."""
        return self.shots_done >= 1


def init_state(cfg: StoryConfig, batch: int, dtype=jnp.float32) -> StoryState:
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    return StoryState(
        ltm=jnp.zeros((batch, cfg.ltm_frames, *frame), dtype),
        tail=jnp.zeros((batch, cfg.stm_frames, *frame), dtype),
        prev_pool=jnp.zeros((batch, cfg.latent_channels), jnp.float32),
        shots_done=jnp.zeros((batch,), jnp.int32),
    )


def _where(cond: jnp.ndarray, a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
    return jnp.where(cond.reshape(cond.shape + (1,) * (a.ndim - cond.ndim)), a, b)


def enter_shot(state: StoryState, boundary: jnp.ndarray, valid: jnp.ndarray, cfg: StoryConfig) -> StoryState:
    """Write the LTM for the coming shot N from the previous tail (Eq. 3, with the boundary entering shot N).

    boundary `[batch]` b̄_N in [0, 1]; valid `[batch]` whether shot N exists (padding shots change nothing).
    After shot 0: L = h(tail); after later shots: L ← z·h(tail) + (1 − z)·L, z = z_max·b̄_N, h = last 2 frames.
    """
    newest = state.tail[:, -cfg.ltm_frames:]
    z = ltm_write_weight(boundary, cfg.gate).astype(state.ltm.dtype)
    z = z.reshape(-1, 1, 1, 1, 1)
    blended = z * newest + (1 - z) * state.ltm
    ltm = _where(state.shots_done == 1, newest, blended)
    ltm = _where(valid & (state.shots_done >= 1), ltm, state.ltm)
    return state.replace(ltm=ltm)


def pooled_shot(latent: jnp.ndarray, n_frames: jnp.ndarray) -> jnp.ndarray:
    """Mean over the valid frames and positions of `latent` `[batch, F, H, W, C]` → `[batch, C]` (float32)."""
    ok = (jnp.arange(latent.shape[1])[None] < n_frames[:, None]).astype(jnp.float32)
    total = jnp.einsum("bfhwc,bf->bc", latent.astype(jnp.float32), ok)
    return total / (jnp.maximum(n_frames, 1)[:, None].astype(jnp.float32) * latent.shape[2] * latent.shape[3])


def finish_shot(state: StoryState, latent: jnp.ndarray, n_frames: jnp.ndarray, valid: jnp.ndarray, cfg: StoryConfig) -> StoryState:
    """Store the finished shot's tail and pooled latent.

    latent `[batch, frames, height, width, channels]` (clean); n_frames `[batch]` its valid frames (≥ P);
    valid `[batch]` whether the shot exists.
    """
    p = cfg.stm_frames

    def last_frames(x, n):
        return jax.lax.dynamic_slice_in_dim(x, jnp.maximum(n - p, 0), p, axis=0)

    tail = jax.vmap(last_frames)(latent, n_frames).astype(state.tail.dtype)
    pooled = pooled_shot(latent, n_frames)
    return StoryState(
        ltm=state.ltm,
        tail=_where(valid, tail, state.tail),
        prev_pool=_where(valid, pooled, state.prev_pool),
        shots_done=state.shots_done + valid.astype(jnp.int32),
    )
