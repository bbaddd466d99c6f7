"""The audio VAE decoder: normalised latent `[B, F, mel', z]` → log-mel `[B, 4F − 3, mel_bins, 2]` (ltx-core 1.0.0).

Un-normalise (patchified, per-channel statistics) → conv_in → mid → per level, deepest first,
`num_res_blocks + 1` ResnetBlocks (+ Upsample except at level 0) → PixelNorm → SiLU → conv_out, then the
output is cropped or zero-padded (at the end) to `max(4F − 3, 1)` frames, `mel_bins` bins, `out_ch` channels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.audio.config import AudioVAEConfig
from unityshots_jax.vae.audio.encoder import patchify, unpatchify
from unityshots_jax.vae.audio.layers import CausalConv2d, MidBlock, PerChannelStatistics, Stage, pixel_norm


def fit_output(x: jnp.ndarray, frames: int, bins: int, channels: int) -> jnp.ndarray:
    """x `[B, T, F, C]` cropped, then zero-padded at the end, to `[B, frames, bins, channels]`."""
    x = x[:, :frames, :bins, :channels]
    pad = ((0, 0), (0, frames - x.shape[1]), (0, bins - x.shape[2]), (0, channels - x.shape[3]))
    return jnp.pad(x, pad) if any(p[1] for p in pad) else x


class AudioDecoder(nnx.Module):
    """Causal 2-D conv decoder over (time, mel), mirror of `AudioEncoder`."""

    def __init__(self, cfg: AudioVAEConfig):
        self.cfg = cfg
        top = cfg.ch * cfg.ch_mult[-1]
        self.per_channel_statistics = PerChannelStatistics(cfg.ch)
        self.conv_in = CausalConv2d(cfg.z_channels, top, 3)
        self.mid = MidBlock(top)
        last = cfg.levels - 1
        self.up = nnx.List([
            Stage(cfg.ch * cfg.ch_mult[min(level + 1, last)], cfg.ch * cfg.ch_mult[level], cfg.num_res_blocks + 1,
                  "upsample" if level != 0 else None)
            for level in range(cfg.levels)])
        self.conv_out = CausalConv2d(cfg.ch * cfg.ch_mult[0], cfg.out_ch, 3)

    def __call__(self, latent: jnp.ndarray) -> jnp.ndarray:
        """latent `[B, F, mel', z]` (normalised) → log-mel `[B, max(4F − 3, 1), mel_bins, out_ch]`."""
        frames = latent.shape[1]
        x = unpatchify(self.per_channel_statistics.un_normalize(patchify(latent)), latent.shape[-1])
        h = self.mid(self.conv_in(x))
        for level in reversed(range(self.cfg.levels)):
            h = self.up[level](h)
        h = self.conv_out(jax.nn.silu(pixel_norm(h)))
        return fit_output(h, self.cfg.decoded_frames(frames), self.cfg.mel_bins, self.cfg.out_ch)

