"""LTX latent upsampler (ltx-core `LatentUpsampler`), channels-last, and its loader.

Latents are `[batch, frames, height, width, channels]`. The official ×2 spatial upscaler is its own
safetensors file: tensors without a prefix, the config as JSON in `metadata["config"]` (read with ltx-core's
`LatentUpsamplerConfigurator` keys and defaults; a file without a config gets the defaults, as in ltx-core).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.loading import default_key, load_module, open_source
from unityshots_jax.vae.video.layers import Conv, GroupNorm, LatentStatistics, depth_to_space

GROUPS = 32
EPS = 1e-5  # torch GroupNorm's default


class UpsamplerConfigError(ValueError):
    """An upsampler config the port cannot build; the message names the key."""


@dataclasses.dataclass(frozen=True)
class UpsamplerConfig:
    """ltx-core `LatentUpsampler` options (rational resampling is not supported)."""

    in_channels: int = 128
    mid_channels: int = 512
    num_blocks_per_stage: int = 4
    dims: int = 3
    spatial_upsample: bool = True
    temporal_upsample: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "UpsamplerConfig":
        """From the upscaler file's `metadata["config"]` dict (keys and defaults of ltx-core's configurator)."""
        c = {k: config.get(k, getattr(cls, k)) for k in (
            "in_channels", "mid_channels", "num_blocks_per_stage", "dims", "spatial_upsample", "temporal_upsample")}
        for key in ("in_channels", "mid_channels", "num_blocks_per_stage"):
            if isinstance(c[key], bool) or not isinstance(c[key], int) or c[key] <= 0:
                raise UpsamplerConfigError(f"upsampler config {key}: expected a positive integer, got {c[key]!r}")
        if c["mid_channels"] % GROUPS:
            raise UpsamplerConfigError(
                f"upsampler config mid_channels: {c['mid_channels']} is not a multiple of {GROUPS}")
        if c["dims"] not in (2, 3):
            raise UpsamplerConfigError(f"upsampler config dims: {c['dims']!r} (expected 2 or 3)")
        if config.get("rational_resampler", False):
            raise UpsamplerConfigError(
                "upsampler config rational_resampler: the rational (×1.5) resampler is not supported")
        if not (c["spatial_upsample"] or c["temporal_upsample"]):
            raise UpsamplerConfigError("upsampler config spatial_upsample / temporal_upsample: one must be true")
        if c["temporal_upsample"] and c["dims"] == 2:
            raise UpsamplerConfigError("upsampler config temporal_upsample: needs dims 3")
        return cls(**c)

    @property
    def stride(self) -> tuple[int, int, int]:
        """Upsampling factors (time, height, width)."""
        s = 2 if self.spatial_upsample else 1
        return (2 if self.temporal_upsample else 1, s, s)


def _conv_same(conv: Conv, x: jnp.ndarray) -> jnp.ndarray:
    """torch `Conv{2,3}d(k=3, padding=1)`: zero padding on every conv axis. x `[B, *axes, C]`."""
    nd = conv.kernel.ndim - 2
    return conv(jnp.pad(x, [(0, 0)] + [(1, 1)] * nd + [(0, 0)]))


class ResBlock(nnx.Module):
    """conv → GN → SiLU → conv → GN → SiLU(x + residual)."""

    def __init__(self, channels: int, kernel: tuple[int, ...], rngs: nnx.Rngs, dtype=jnp.float32):
        self.conv1 = Conv(kernel, channels, channels, rngs, dtype)
        self.norm1 = GroupNorm(channels, GROUPS, EPS, dtype)
        self.conv2 = Conv(kernel, channels, channels, rngs, dtype)
        self.norm2 = GroupNorm(channels, GROUPS, EPS, dtype)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, *axes, C]` → same shape."""
        h = jax.nn.silu(self.norm1(_conv_same(self.conv1, x)))
        return jax.nn.silu(self.norm2(_conv_same(self.conv2, h)) + x)


class LatentUpsampler(nnx.Module):
    """ltx-core `LatentUpsampler`: conv, GN, SiLU, ResBlocks, conv + pixel shuffle, ResBlocks, conv."""

    def __init__(self, cfg: UpsamplerConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        k = (3,) * cfg.dims
        mid = cfg.mid_channels
        self.initial_conv = Conv(k, cfg.in_channels, mid, rngs, dtype)
        self.initial_norm = GroupNorm(mid, GROUPS, EPS, dtype)
        blocks = cfg.num_blocks_per_stage
        self.res_blocks = nnx.List([ResBlock(mid, k, rngs, dtype) for _ in range(blocks)])
        factor = 2 ** sum(s == 2 for s in cfg.stride)
        # spatial-only: a per-frame Conv2d; temporal (with or without spatial): a Conv3d
        up_kernel = (3, 3) if not cfg.temporal_upsample else (3, 3, 3)
        self.upsampler = nnx.List([Conv(up_kernel, mid, factor * mid, rngs, dtype)])
        self.post_upsample_res_blocks = nnx.List([ResBlock(mid, k, rngs, dtype) for _ in range(blocks)])
        self.final_conv = Conv(k, mid, cfg.in_channels, rngs, dtype)

    def __call__(self, latent: jnp.ndarray) -> jnp.ndarray:
        """latent `[B, F, h, w, C]` (un-normalised) → `[B, F', 2h, 2w, C]` (F' = 2F − 1 if temporal)."""
        b, f = latent.shape[:2]
        per_frame = self.cfg.dims == 2
        x = latent.reshape(b * f, *latent.shape[2:]) if per_frame else latent
        x = jax.nn.silu(self.initial_norm(_conv_same(self.initial_conv, x)))
        for block in self.res_blocks:
            x = block(x)
        if self.cfg.temporal_upsample:
            x = depth_to_space(_conv_same(self.upsampler[0], x), self.cfg.stride)[:, 1:]
        else:
            frames = x if per_frame else x.reshape(b * f, *x.shape[2:])
            y = _conv_same(self.upsampler[0], frames)[:, None]
            y = depth_to_space(y, self.cfg.stride)[:, 0]
            x = y if per_frame else y.reshape(b, f, *y.shape[1:])
        for block in self.post_upsample_res_blocks:
            x = block(x)
        x = _conv_same(self.final_conv, x)
        return x.reshape(b, f, *x.shape[1:]) if per_frame else x


def upsample_video(latent: jnp.ndarray, stats: LatentStatistics, upsampler: LatentUpsampler) -> jnp.ndarray:
    """ltx-core `upsample_video`: un-normalise with the VAE's statistics → upsample → normalise.

    latent `[B, F, h, w, C]` normalised → `[B, F', 2h, 2w, C]` normalised; stats: the video encoder's
    `per_channel_statistics`.
    """
    return stats.normalize(upsampler(stats.un_normalize(latent)))


def load_upsampler(path: str, *, dtype=jnp.float32) -> LatentUpsampler:
    """The latent upsampler of an official upscaler file (no key prefix, config in its metadata)."""
    source = open_source(path, config_from_file=False)
    cfg = UpsamplerConfig.from_config(source.config)
    return load_module(lambda: LatentUpsampler(cfg, nnx.Rngs(0), dtype), source, default_key, ("",), dtype=dtype,
                       what="latent upsampler")
