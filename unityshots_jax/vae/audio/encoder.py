"""The audio VAE encoder: log-mel `[B, T, mel, 2]` → normalised latent `[B, ⌈T/4⌉, mel/4, z]` (ltx-core 1.0.0).

conv_in → per level `num_res_blocks` ResnetBlocks (+ a stride-2 Downsample except after the last level) → mid
→ PixelNorm → SiLU → conv_out. The first half of conv_out's channels (the means) is patchified to
`[B, T', z·mel']`, normalised by the per-channel statistics and unpatchified.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.audio.config import AudioVAEConfig
from unityshots_jax.vae.audio.layers import CausalConv2d, MidBlock, PerChannelStatistics, Stage, pixel_norm


def patchify(x: jnp.ndarray) -> jnp.ndarray:
    """x `[B, T, F, C]` → tokens `[B, T, C·F]` (channel-major, as ltx-core's `b c t f -> b t (c f)`)."""
    b, t, f, c = x.shape
    return jnp.swapaxes(x, 2, 3).reshape(b, t, c * f)


def unpatchify(tokens: jnp.ndarray, channels: int) -> jnp.ndarray:
    """tokens `[B, T, C·F]` → `[B, T, F, C]`."""
    b, t, n = tokens.shape
    return jnp.swapaxes(tokens.reshape(b, t, channels, n // channels), 2, 3)


class AudioEncoder(nnx.Module):
    """Causal 2-D conv encoder over (time, mel) with per-channel latent normalisation."""

    def __init__(self, cfg: AudioVAEConfig):
        self.cfg = cfg
        mult = (1, *cfg.ch_mult)
        self.per_channel_statistics = PerChannelStatistics(cfg.ch)
        self.conv_in = CausalConv2d(cfg.in_channels, cfg.ch, 3)
        self.down = nnx.List([
            Stage(cfg.ch * mult[i], cfg.ch * mult[i + 1], cfg.num_res_blocks,
                  "downsample" if i != cfg.levels - 1 else None)
            for i in range(cfg.levels)])
        top = cfg.ch * cfg.ch_mult[-1]
        self.mid = MidBlock(top)
        self.conv_out = CausalConv2d(top, 2 * cfg.z_channels if cfg.double_z else cfg.z_channels, 3)

    def __call__(self, mel: jnp.ndarray) -> jnp.ndarray:
        """mel `[B, T, mel_bins, in_channels]` → normalised latent `[B, T', mel', ⌈out/2⌉]`
        (out = conv_out width)."""
        h = self.conv_in(mel)
        for stage in self.down:
            h = stage(h)
        h = self.conv_out(jax.nn.silu(pixel_norm(self.mid(h))))
        means = h[..., : -(-h.shape[-1] // 2)]  # torch.chunk(h, 2, dim=channels)[0]
        tokens = self.per_channel_statistics.normalize(patchify(means))
        return unpatchify(tokens, means.shape[-1])

