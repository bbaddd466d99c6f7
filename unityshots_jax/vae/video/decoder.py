"""The LTX video decoder: normalised latents `[B, F, h, w, C]` → pixels `[B, 8(F−1)+1, 32h, 32w, 3]` in ~[−1, 1]."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.video.config import BlockSpec, VideoVAEConfig
from unityshots_jax.vae.video.encoder import VideoShapeError
from unityshots_jax.vae.video.layers import (
    CausalConv3d,
    DepthToSpaceUpsample,
    LatentStatistics,
    ResBlockStack,
    ResnetBlock3D,
    pixel_norm,
    unpatchify,
)


def _decoder_block(spec: BlockSpec, cin: int, rngs: nnx.Rngs, padding: str, dtype) -> tuple[nnx.Module, int]:
    if spec.name == "res_x":
        return ResBlockStack(cin, spec.num_layers, rngs, padding_mode=padding, dtype=dtype), cin
    if spec.name == "res_x_y":
        cout = cin // spec.multiplier
        return ResnetBlock3D(cin, cout, rngs, padding_mode=padding, dtype=dtype), cout
    block = DepthToSpaceUpsample(cin, spec.stride, spec.multiplier, spec.residual, rngs, padding_mode=padding, dtype=dtype)
    return block, cin // spec.multiplier


class VideoDecoder(nnx.Module):
    """ltx-core `VideoDecoder` without timestep conditioning; blocks run in reverse of the config's list.

    The first conv widens to `decoder_base_channels · 8` (ltx-core's fixed assumption of three ×2 stages).
    `cfg.causal_decoder` selects causal or non-causal (2.3) temporal padding for every conv.
    """

    def __init__(self, cfg: VideoVAEConfig, rngs: nnx.Rngs, dtype=jnp.float32):
        self.cfg = cfg
        pad = cfg.decoder_padding
        self.per_channel_statistics = LatentStatistics(cfg.latent_channels, dtype)
        channels = cfg.decoder_base_channels * 8
        self.conv_in = CausalConv3d(cfg.latent_channels, channels, rngs, padding_mode=pad, dtype=dtype)
        blocks = []
        for spec in reversed(cfg.decoder_blocks):
            block, channels = _decoder_block(spec, channels, rngs, pad, dtype)
            blocks.append(block)
        self.up_blocks = nnx.List(blocks)
        out = cfg.out_channels * cfg.patch_size**2
        self.conv_out = CausalConv3d(channels, out, rngs, padding_mode=pad, dtype=dtype)

    def frame_count(self, latent_frames: int) -> int:
        return self.cfg.decoder_temporal_scale * (latent_frames - 1) + 1

    def __call__(self, latent: jnp.ndarray) -> jnp.ndarray:
        """latent `[B, F, h, w, C]` (normalised) → video `[B, 8(F−1)+1, 32h, 32w, 3]`."""
        if latent.ndim != 5 or latent.shape[-1] != self.cfg.latent_channels:
            raise VideoShapeError(
                f"latent: expected [batch, frames, height, width, {self.cfg.latent_channels}], got {list(latent.shape)}")
        if self.cfg.decoder_padding == "reflect" and min(latent.shape[2:4]) < 2:
            raise VideoShapeError(f"latent: reflect padding needs height and width ≥ 2, got {list(latent.shape[2:4])}")
        causal = self.cfg.causal_decoder
        x = self.per_channel_statistics.un_normalize(latent)
        x = self.conv_in(x, causal)
        for block in self.up_blocks:
            x = block(x, causal)
        x = self.conv_out(jax.nn.silu(pixel_norm(x)), causal)
        return unpatchify(x, self.cfg.patch_size)
