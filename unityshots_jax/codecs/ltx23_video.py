"""The LTX-2.3 video codec: frames `[T, H, W, 3]` in [0, 1] ↔ normalised VAE latents `[F, h, w, C]`.

Implements `codecs.base.VideoCodec` over the JAX video VAE (`vae/video`), loaded from the official single-file
checkpoint or a converted directory; optional tiling (ltx-core's semantics, bounded memory), optional ×2 latent
upsampler (`upsample`), optional height- or width-sharded decode/encode over a device mesh axis. Encode and decode are
jitted once per input shape.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unityshots_jax.vae.upsampler import LatentUpsampler, load_upsampler, upsample_video
from unityshots_jax.vae.video.decoder import VideoDecoder
from unityshots_jax.vae.video.encoder import VideoEncoder, VideoShapeError
from unityshots_jax.vae.video.keys import load_video_decoder, load_video_encoder
from unityshots_jax.vae.video.tiling import Tiling, tiled_decode, tiled_encode

DEFAULT_FPS = 24.0  # LTX-2.3 pipelines' frame rate


SPATIAL_AXES = {"height": 2, "width": 3}


def jit_module(module: nnx.Module, mesh: Mesh | None = None, mesh_axis: str | None = None,
               split: str = "width") -> Callable[[np.ndarray], jax.Array]:
    """`x ↦ module(x)` jitted, parameters closed over as one state.

    With `mesh` and `mesh_axis`, parameters are replicated over the mesh and the input `[B, F, H, W, C]` is
    constrained to be split along `split` ("height" or "width") over `mesh_axis`; XLA's SPMD partitioner then
    runs every convolution on its slice (exchanging the one-row halos), so activations never exist whole on one
    device. The split axis of the input must divide by the mesh axis size (XLA falls back to replication
    otherwise): for 1376×768 shots (latents 24×43) split the height.
    """
    graphdef, state = nnx.split(module)
    if mesh is None:
        f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        return lambda x: f(state, jnp.asarray(x))
    if split not in SPATIAL_AXES:
        raise ValueError(f"split: {split!r} (expected one of {sorted(SPATIAL_AXES)})")
    state = jax.device_put(state, NamedSharding(mesh, PartitionSpec()))
    spec = [None] * 5
    spec[SPATIAL_AXES[split]] = mesh_axis
    constraint = NamedSharding(mesh, PartitionSpec(*spec))
    size = mesh.shape[mesh_axis]

    def run(s, x):
        return nnx.merge(graphdef, s)(jax.lax.with_sharding_constraint(x, constraint))

    f = jax.jit(run)

    def call(x):
        if x.shape[SPATIAL_AXES[split]] % size:
            raise ValueError(f"sharded VAE: input {split} {x.shape[SPATIAL_AXES[split]]} does not divide by the "
                             f"{size} devices of mesh axis {mesh_axis!r}; split the other axis or pad")
        return f(state, jnp.asarray(x))

    return call


@dataclasses.dataclass
class LTX23VideoCodec:
    """`VideoCodec` over the LTX video VAE. encoder may be None (decode-only); tiling None decodes in one piece."""

    decoder: VideoDecoder
    encoder: VideoEncoder | None = None
    upsampler: LatentUpsampler | None = None
    tiling: Tiling | None = None
    fps: float = DEFAULT_FPS
    mesh: Mesh | None = None
    mesh_axis: str | None = None
    split: str = "width"

    def __post_init__(self) -> None:
        cfg = self.decoder.cfg
        self.temporal_scale = cfg.decoder_temporal_scale
        self.spatial_scale = cfg.decoder_spatial_scale
        self.latent_channels = cfg.latent_channels
        self._decode = jit_module(self.decoder, self.mesh, self.mesh_axis, self.split)
        self._encode = None if self.encoder is None else jit_module(self.encoder, self.mesh, self.mesh_axis, self.split)
        self._upsample = None
        if self.upsampler is not None:
            if self.encoder is None:
                raise ValueError("ltx23 video codec: the upsampler needs the encoder's latent statistics")
            stats = self.encoder.per_channel_statistics
            self._upsample = nnx.jit(lambda up, st, x: upsample_video(x, st, up))
            self._upsample_args = (self.upsampler, stats)

    @classmethod
    def from_checkpoint(cls, path: str, *, upsampler_path: str | None = None, encoder: bool = True,
                        tiling: Tiling | None = None, dtype=jnp.float32, **kwargs) -> "LTX23VideoCodec":
        """Load from an official LTX checkpoint file or a converted directory (+ an official upscaler file)."""
        return cls(
            decoder=load_video_decoder(path, dtype=dtype),
            encoder=load_video_encoder(path, dtype=dtype) if encoder or upsampler_path else None,
            upsampler=load_upsampler(upsampler_path, dtype=dtype) if upsampler_path else None,
            tiling=tiling, **kwargs)

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(F, h, w, C) of a clip; raises `VideoShapeError` naming a size that is not 8k+1 frames / a multiple of 32."""
        t, s = self.temporal_scale, self.spatial_scale
        if frames < 1 or (frames - 1) % t:
            raise VideoShapeError(f"video frames: {frames} is not {t}k+1")
        for name, size in (("height", height), ("width", width)):
            if size < s or size % s:
                raise VideoShapeError(f"video {name}: {size} px is not a positive multiple of {s}")
        return ((frames - 1) // t + 1, height // s, width // s, self.latent_channels)

    def frame_count(self, latent_frames: int) -> int:
        return self.temporal_scale * (latent_frames - 1) + 1

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames `[T, H, W, 3]` in [0, 1] → latents `[F, h, w, C]` (float32)."""
        if self._encode is None:
            raise ValueError("ltx23 video codec: loaded without the encoder")
        frames = np.asarray(frames, np.float32)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoShapeError(f"frames: expected [T, H, W, 3], got {list(frames.shape)}")
        self.latent_shape(*frames.shape[:3])
        video = (2.0 * frames - 1.0)[None]
        if self.tiling is None:
            return np.asarray(self._encode(video), np.float32)[0]
        return tiled_encode(self._encode, video, self.tiling, self.latent_channels,
                            time_scale=self.temporal_scale, space_scale=self.spatial_scale)[0].astype(np.float32)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latents `[F, h, w, C]` → frames `[8(F−1)+1, 32h, 32w, 3]` in [0, 1] (float32)."""
        latents = np.asarray(latents, np.float32)
        if latents.ndim != 4 or latents.shape[-1] != self.latent_channels:
            raise VideoShapeError(f"latents: expected [F, h, w, {self.latent_channels}], got {list(latents.shape)}")
        if self.tiling is None:
            video = np.asarray(self._decode(latents[None]))
        else:
            video = np.concatenate(list(tiled_decode(self._decode, latents[None], self.tiling,
                                                     time_scale=self.temporal_scale, space_scale=self.spatial_scale)),
                                   axis=1)
        return np.clip((video[0] + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)

    def upsample(self, latents: np.ndarray) -> np.ndarray:
        """latents `[F, h, w, C]` → `[F, 2h, 2w, C]` with the ×2 upsampler (un-normalise, upsample, normalise)."""
        if self._upsample is None:
            raise ValueError("ltx23 video codec: loaded without an upsampler")
        x = jnp.asarray(np.asarray(latents, np.float32)[None])
        return np.asarray(self._upsample(*self._upsample_args, x), np.float32)[0]
