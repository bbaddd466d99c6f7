"""Strata-RoPE: the positions of every block of a shot's sequence (paper Eq. 4), in LTX's units.

Temporal indices are latent-frame indices mapped to seconds exactly as LTX maps ordinary latent frames
(pixel-frame bounds with the causal fix, divided by fps), so the current shot keeps the positions the
backbone was trained with and the memory strata sit at the end of the temporal range:
  current shot      frames 0 … F−1
  reference image   frames n_frames … n_frames + R − 1 (the gap right after the shot)
  LTM               frames f_lim − 2P … f_lim − 2P + L − 1 (the first frames of its band)
  STM               frames f_lim − P … f_lim − 1
Spatial positions are the ordinary latent grid for every block. Audio: the shot's latents 0 … Fa − 1, the
reference voice right after the shot's valid audio.
"""

from __future__ import annotations

import jax.numpy as jnp

from unityshots_jax.ltx import positions
from unityshots_jax.story.story_config import StoryConfig


def video_positions(frame_index: jnp.ndarray, cfg: StoryConfig) -> jnp.ndarray:
    """frame_index `[batch, frames]` (float) → positions `[batch, 3, frames·H·W, 2]` (seconds, px, px)."""
    return positions.video_positions(frame_index, cfg.height, cfg.width, fps=cfg.fps,
                                     temporal_scale=cfg.temporal_scale, spatial_scale=cfg.spatial_scale)


def audio_positions(latent_index: jnp.ndarray, cfg: StoryConfig) -> jnp.ndarray:
    """latent_index `[batch, frames]` → positions `[batch, 1, frames, 2]` in seconds (LTX audio latents)."""
    return positions.audio_positions(latent_index, downsample=cfg.audio_downsample, hop_seconds=cfg.audio_hop_seconds)


def sequence_frame_indices(n_frames: jnp.ndarray, cfg: StoryConfig) -> dict[str, jnp.ndarray]:
    """Temporal latent-frame index of every video block, each `[batch, block_frames]` (float32).

    n_frames `[batch]` valid frames of the current shot.
    """
    b = n_frames.shape[0]
    row = lambda idx: jnp.broadcast_to(jnp.asarray(idx, jnp.float32)[None], (b, len(idx)))  # noqa: E731
    p = cfg.stm_frames
    return {
        "shot": row(range(cfg.video_frames)),
        "ref_image": n_frames.astype(jnp.float32)[:, None] + jnp.arange(cfg.ref_image_frames, dtype=jnp.float32)[None],
        "ltm": row(range(cfg.frame_limit - 2 * p, cfg.frame_limit - 2 * p + cfg.ltm_frames)),
        "stm": row(range(cfg.frame_limit - p, cfg.frame_limit)),
    }


def sequence_audio_indices(n_audio: jnp.ndarray, cfg: StoryConfig) -> dict[str, jnp.ndarray]:
    """Audio latent index of the shot's audio and of the reference voice, each `[batch, block_frames]`."""
    b = n_audio.shape[0]
    shot = jnp.broadcast_to(jnp.arange(cfg.audio_frames, dtype=jnp.float32)[None], (b, cfg.audio_frames))
    ref = n_audio.astype(jnp.float32)[:, None] + jnp.arange(cfg.ref_audio_frames, dtype=jnp.float32)[None]
    return {"shot": shot, "ref_audio": ref}
