"""Hand-made transformer inputs and random parameters (numpy / jax only, no torch)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.ltx.inputs import StreamInput


def video_positions(batch: int, frames: int, height: int, width: int, fps: float = 24.0) -> np.ndarray:
    """`[batch, 3, tokens, 2]` [start, end) bounds: seconds (8-frame causal latents), pixels (32 px patches)."""
    f, h, w = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    t0 = np.maximum(f * 8 - 7, 0) / fps
    t1 = (f * 8 + 1) / fps
    bounds = [np.stack([t0, t1], -1), np.stack([h * 32, h * 32 + 32], -1), np.stack([w * 32, w * 32 + 32], -1)]
    pos = np.stack([b.reshape(-1, 2) for b in bounds], 0).astype(np.float32)
    return np.broadcast_to(pos, (batch, *pos.shape)).copy()


def audio_positions(batch: int, frames: int) -> np.ndarray:
    """`[batch, 1, frames, 2]` seconds (40 ms latent frames)."""
    start = np.arange(frames, dtype=np.float32) * 0.04
    pos = np.stack([start, start + 0.04], -1)[None]
    return np.broadcast_to(pos, (batch, *pos.shape)).astype(np.float32).copy()


def make_inputs(
    cfg: LTXConfig,
    *,
    batch: int = 2,
    grid: tuple[int, int, int] = (2, 2, 3),
    audio_tokens: int = 6,
    text_tokens: int = 4,
    seed: int = 0,
    mask: bool = True,
) -> tuple[StreamInput | None, StreamInput | None]:
    """Seeded float32 inputs for both streams of `cfg` (None for an absent stream)."""
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.2, 0.9, batch).astype(np.float32)
    context_mask = np.ones((batch, text_tokens), np.int32)
    if mask and batch > 1:
        context_mask[1, :1] = 0

    def stream(s, tokens, positions):
        timesteps = np.broadcast_to(sigma[:, None], (batch, tokens)).copy()
        timesteps[:, :1] = 0.0  # a clean conditioning token
        return StreamInput(
            latent=jnp.asarray(rng.standard_normal((batch, tokens, s.in_channels)), jnp.float32),
            sigma=jnp.asarray(sigma),
            timesteps=jnp.asarray(timesteps),
            positions=jnp.asarray(positions),
            context=jnp.asarray(rng.standard_normal((batch, text_tokens, s.context_dim)), jnp.float32),
            context_mask=jnp.asarray(context_mask) if mask else None,
        )

    video = audio = None
    if cfg.has_video:
        video = stream(cfg.video, int(np.prod(grid)), video_positions(batch, *grid))
    if cfg.has_audio:
        audio = stream(cfg.audio, audio_tokens, audio_positions(batch, audio_tokens))
    return video, audio


def random_model(cfg: LTXConfig, seed: int = 0) -> tuple[nnx.GraphDef, nnx.State]:
    """(graphdef, random parameters) without running the Flax initialisers (fast: no per-op compiles).

    Parameters are drawn in numpy like the reference helpers: 0.2·N(0, 1); tables 0.5·N; q/k norms 1 + 0.1·N.
    (`nnx.Linear`'s own init, N(0, 0.02) and zero biases, would leave a tiny model nearly linear with
    near-zero outputs, which makes equality checks weak.)
    """
    from unityshots_jax.ltx.transformer import abstract_model

    graphdef, state = nnx.split(abstract_model(cfg))
    return graphdef, randomize(state, seed)


def randomize(state: nnx.State, seed: int = 0) -> nnx.State:
    """`state` (concrete or abstract) with every parameter redrawn (see `random_model`)."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, leaf in nnx.to_flat_state(state):
        value = leaf.get_value()
        noise = rng.standard_normal(value.shape).astype(np.float32)
        name = str(path[-1])
        if name in ("q_norm", "k_norm"):
            new = 1.0 + 0.1 * noise
        elif "scale_shift_table" in name:
            new = 0.5 * noise
        else:
            new = 0.2 * noise
        out[path] = leaf.replace(jnp.asarray(new, value.dtype))
    return nnx.from_flat_state(out)
