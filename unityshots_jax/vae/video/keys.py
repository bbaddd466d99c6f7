"""Checkpoint keys of the video VAE and its loaders (official single file or converted directory).

File layout (ltx-core's `VAE_{DECODER,ENCODER}_COMFY_KEYS_FILTER`): `vae.decoder.<module path>`,
`vae.encoder.<module path>`, and the latent statistics, shared by both halves, at
`vae.per_channel_statistics.{std-of-means,mean-of-means}` (hyphenated buffer names).
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.loading import CheckpointSource, default_key, expected_tensors, load_module, open_source
from unityshots_jax.vae.video.config import VideoVAEConfig, vae_config_from_checkpoint
from unityshots_jax.vae.video.decoder import VideoDecoder
from unityshots_jax.vae.video.encoder import VideoEncoder

DECODER_PREFIX = "vae.decoder."
ENCODER_PREFIX = "vae.encoder."
STATS_PREFIX = "vae.per_channel_statistics."


def file_key(prefix: str, path: tuple) -> str:
    """The file key of a VAE parameter at attribute `path` under the half's `prefix`."""
    key = default_key(path)
    if key.startswith("per_channel_statistics."):
        return STATS_PREFIX + key[len("per_channel_statistics."):]
    return prefix + key


def _load(cls, prefix: str, source: CheckpointSource, cfg: VideoVAEConfig | None, dtype):
    cfg = cfg if cfg is not None else vae_config_from_checkpoint(source.config)
    return load_module(
        lambda: cls(cfg, nnx.Rngs(0), dtype), source, lambda p: file_key(prefix, p), (prefix,), dtype=dtype,
        what=f"video VAE {'decoder' if cls is VideoDecoder else 'encoder'}")


def load_video_decoder(path: str, *, dtype=jnp.float32, cfg: VideoVAEConfig | None = None) -> VideoDecoder:
    """The video decoder of an official LTX checkpoint file or a converted directory (config from its metadata)."""
    return _load(VideoDecoder, DECODER_PREFIX, open_source(path), cfg, dtype)


def load_video_encoder(path: str, *, dtype=jnp.float32, cfg: VideoVAEConfig | None = None) -> VideoEncoder:
    """The video encoder of an official LTX checkpoint file or a converted directory (config from its metadata)."""
    return _load(VideoEncoder, ENCODER_PREFIX, open_source(path), cfg, dtype)


def video_vae_tensors(cfg: VideoVAEConfig) -> dict[str, tuple[int, ...]]:
    """{file key: shape} of both halves of a video VAE of `cfg` in the official single-file layout."""
    out = expected_tensors(lambda: VideoEncoder(cfg, nnx.Rngs(0)), lambda p: file_key(ENCODER_PREFIX, p))
    out.update(expected_tensors(lambda: VideoDecoder(cfg, nnx.Rngs(0)), lambda p: file_key(DECODER_PREFIX, p)))
    return out
