"""The LTX video decoder: normalised latents `[B, F, h, w, C]` → pixels `[B, 8(F−1)+1, 32h, 32w, 3]`, ~[−1, 1]."""

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
    TimeEmbedder,
    modulate,
    pixel_norm,
    unpatchify,
)

DECODE_TIMESTEP = 0.05  # ltx-core VideoDecoder.decode_timestep
DECODE_NOISE_SCALE = 0.025  # ltx-core VideoDecoder.decode_noise_scale


def _decoder_block(spec: BlockSpec, cin: int, rngs: nnx.Rngs, padding: str, timestep: bool,
                   dtype) -> tuple[nnx.Module, int]:
    if spec.name == "res_x":
        stack = ResBlockStack(cin, spec.num_layers, rngs, padding_mode=padding, timestep_conditioning=timestep,
                              dtype=dtype)
        return stack, cin
    if spec.name == "res_x_y":
        cout = cin // spec.multiplier
        return ResnetBlock3D(cin, cout, rngs, padding_mode=padding, dtype=dtype), cout
    block = DepthToSpaceUpsample(cin, spec.stride, spec.multiplier, spec.residual, rngs, padding_mode=padding,
                                 dtype=dtype)
    return block, cin // spec.multiplier


class VideoDecoder(nnx.Module):
    """ltx-core `VideoDecoder`; blocks run in reverse of the config's list.

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
            block, channels = _decoder_block(spec, channels, rngs, pad, cfg.timestep_conditioning, dtype)
            blocks.append(block)
        self.up_blocks = nnx.List(blocks)
        out = cfg.out_channels * cfg.patch_size**2
        self.conv_out = CausalConv3d(channels, out, rngs, padding_mode=pad, dtype=dtype)
        if cfg.timestep_conditioning:
            self.timestep_scale_multiplier = nnx.Param(jnp.asarray(1000.0, dtype))
            self.last_time_embedder = TimeEmbedder(2 * channels, rngs, dtype)
            self.last_scale_shift_table = nnx.Param(jnp.zeros((2, channels), dtype), sharding_names=(None, "vae_out"))
        else:
            self.timestep_scale_multiplier = self.last_time_embedder = self.last_scale_shift_table = None

    def frame_count(self, latent_frames: int) -> int:
        return self.cfg.decoder_temporal_scale * (latent_frames - 1) + 1

    def __call__(self, latent: jnp.ndarray, *, timestep: float | jnp.ndarray = DECODE_TIMESTEP,
                 noise: jnp.ndarray | None = None, key: jax.Array | None = None) -> jnp.ndarray:
        """latent `[B, F, h, w, C]` (normalised) → video `[B, 8(F−1)+1, 32h, 32w, 3]`.

        Timestep-conditioned decoders only: `timestep` (scalar or `[B]`, ltx-core's default 0.05) and the noise
        mixed into the latent first (`noise·0.025 + 0.975·latent`): `noise` `[B, F, h, w, C]` if given, else drawn
        from `key` (default key 0). Other decoders ignore the three.
        """
        if latent.ndim != 5 or latent.shape[-1] != self.cfg.latent_channels:
            raise VideoShapeError(
                f"latent: expected [batch, frames, height, width, {self.cfg.latent_channels}], "
                f"got {list(latent.shape)}")
        if self.cfg.decoder_padding == "reflect" and min(latent.shape[2:4]) < 2:
            raise VideoShapeError(
                f"latent: reflect padding needs height and width ≥ 2, got {list(latent.shape[2:4])}")
        causal = self.cfg.causal_decoder
        scaled = None
        if self.cfg.timestep_conditioning:
            if noise is None:
                noise = jax.random.normal(jax.random.PRNGKey(0) if key is None else key, latent.shape, latent.dtype)
            latent = noise.astype(latent.dtype) * DECODE_NOISE_SCALE + (1.0 - DECODE_NOISE_SCALE) * latent
            t = jnp.broadcast_to(jnp.asarray(timestep, latent.dtype), latent.shape[:1])
            scaled = t * self.timestep_scale_multiplier[...].astype(latent.dtype)
        x = self.per_channel_statistics.un_normalize(latent)
        x = self.conv_in(x, causal)
        for block in self.up_blocks:
            x = block(x, causal, scaled) if isinstance(block, ResBlockStack) else block(x, causal)
        x = pixel_norm(x)
        if scaled is not None:
            emb = self.last_time_embedder(scaled, x.dtype).reshape(x.shape[0], 2, -1)
            ada = self.last_scale_shift_table[...].astype(x.dtype)[None] + emb
            x = modulate(x, ada[:, 0], ada[:, 1])
        x = self.conv_out(jax.nn.silu(x), causal)
        return unpatchify(x, self.cfg.patch_size)
