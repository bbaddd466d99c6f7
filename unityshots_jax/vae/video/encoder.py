"""The causal LTX video encoder: pixels `[B, T, H, W, 3]` in [−1, 1] → normalised latent means `[B, F, h, w, C]`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.video.config import BlockSpec, VideoVAEConfig
from unityshots_jax.vae.video.layers import (
    CausalConv3d,
    LatentStatistics,
    ResBlockStack,
    ResnetBlock3D,
    SpaceToDepthDownsample,
    patchify,
    pixel_norm,
)


class VideoShapeError(ValueError):
    """A video or latent whose size the VAE cannot take; the message names the size."""


def _encoder_block(spec: BlockSpec, cin: int, rngs: nnx.Rngs, padding: str, dtype) -> tuple[nnx.Module, int]:
    if spec.name == "res_x":
        return ResBlockStack(cin, spec.num_layers, rngs, padding_mode=padding, dtype=dtype), cin
    if spec.name == "res_x_y":
        cout = cin * spec.multiplier
        return ResnetBlock3D(cin, cout, rngs, padding_mode=padding, dtype=dtype), cout
    if spec.name in ("compress_time", "compress_space", "compress_all", "compress_all_x_y"):
        cout = cin * spec.multiplier if spec.name == "compress_all_x_y" else cin
        return CausalConv3d(cin, cout, rngs, padding_mode=padding, stride=spec.stride, dtype=dtype), cout
    cout = cin * spec.multiplier  # compress_*_res
    return SpaceToDepthDownsample(cin, cout, spec.stride, rngs, padding_mode=padding, dtype=dtype), cout


class VideoEncoder(nnx.Module):
    """ltx-core `VideoEncoder` (always causal). Attribute paths are the checkpoint's module paths."""

    def __init__(self, cfg: VideoVAEConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        pad = cfg.encoder_padding
        self.per_channel_statistics = LatentStatistics(cfg.latent_channels, dtype)
        channels = cfg.latent_channels
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, channels, rngs, padding_mode=pad, dtype=dtype)
        blocks = []
        for spec in cfg.encoder_blocks:
            block, channels = _encoder_block(spec, channels, rngs, pad, dtype)
            blocks.append(block)
        self.down_blocks = nnx.List(blocks)
        out = cfg.latent_channels * 2 if cfg.latent_log_var == "per_channel" else cfg.latent_channels + 1
        self.conv_out = CausalConv3d(channels, out, rngs, padding_mode=pad, dtype=dtype)

    def check_video_shape(self, frames: int, height: int, width: int) -> None:
        """Raise `VideoShapeError` unless frames = 1 + 8k and H, W are multiples of 32 (the config's scales)."""
        t, s = self.cfg.temporal_scale, self.cfg.spatial_scale
        if frames < 1 or (frames - 1) % t:
            raise VideoShapeError(f"video frames: {frames} is not {t}k+1 (e.g. {t + 1}, {2 * t + 1}, {3 * t + 1})")
        for name, size in (("height", height), ("width", width)):
            if size < s or size % s:
                raise VideoShapeError(f"video {name}: {size} px is not a positive multiple of {s}")
            if self.cfg.encoder_padding == "reflect" and size < 2 * s:
                raise VideoShapeError(f"video {name}: {size} px; reflect padding needs at least {2 * s}")

    def __call__(self, video: jnp.ndarray) -> jnp.ndarray:
        """video `[B, T, H, W, 3]` in [−1, 1], T = 8k+1 → normalised latent means `[B, k+1, H/32, W/32, C]`.

        Unlike ltx-core (which crops a bad frame count with a warning), a bad size is refused.
        """
        self.check_video_shape(*video.shape[1:4])
        x = patchify(video, self.cfg.patch_size)
        x = self.conv_in(x, True)
        for block in self.down_blocks:
            x = block(x, True)
        x = self.conv_out(jax.nn.silu(pixel_norm(x)), True)
        return self.per_channel_statistics.normalize(x[..., : self.cfg.latent_channels])
