"""The toy world's media codecs: fixed, documented, with the interface the LTX video and audio VAEs have.

Video (`ToyVideoCodec`): 4 frames × 4 × 4 px → one latent of 48 channels. Each group of 4 frames is averaged
(a temporal box filter: motion inside a group blurs, as a video VAE's temporal compression does), each
4 × 4 patch of every colour plane is mapped to (2·x − 1) and transformed by the orthonormal 2-D DCT-II, and
coefficient (u, v) is divided by `DCT_SCALE[u, v]` — its standard deviation over toy-world footage (rounded), so
every channel has about unit variance, as LTX's VAE normalises its latents per channel (without it the fine
coefficients are ~30× smaller than the noise and a sampler leaves visible noise in them); channel =
colour·16 + 4·u + v. Decoding inverts that exactly and holds each latent frame for 4 frames. Spatially lossless,
temporally a box filter: encode(decode(z)) == z.

Audio (`ToyAudioCodec`): 800 samples (50 ms at 16 kHz) → 16 channels, the amplitudes of sines at
120 + 40·c Hz (each an integer number of cycles per frame, so the projections are orthogonal), measured by
projecting the frame on each frequency and mapped to 8·A − 1 (silence is −1, a full-loudness harmonic about +1). Decoding synthesises those sines with the
amplitudes held per frame. Exact for the toy world's sounds (whose amplitudes change only at frame edges).

Both work on one clip at a time (no batch axis), in numpy, float32, with the shapes of the codec interface
(`unityshots_jax.codecs.base`): waveforms are `[N, 1]` (mono) in and out; `toy_world/codec_bundle.py` registers
them, with the hash text encoder, as the codec bundle "toy_world".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unityshots_jax.toy_world.world_spec import AUDIO_FREQS, AUDIO_HOP, FPS, PATCH, SAMPLE_RATE, TEMPORAL_SCALE


# std of each DCT coefficient of (2·x − 1) over 2,700 rendered toy shots, averaged over colour planes, rounded
DCT_SCALE = np.asarray([
    [1.6, 0.3, 0.14, 0.08],
    [0.65, 0.19, 0.11, 0.06],
    [0.27, 0.1, 0.08, 0.06],
    [0.3, 0.1, 0.07, 0.07],
], np.float32)


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix `[n, n]` (rows: frequencies)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


class CodecError(ValueError):
    """Media of the wrong shape or values for a codec; the message names the argument."""


@dataclasses.dataclass(frozen=True)
class ToyVideoCodec:
    fps: float = FPS
    temporal_scale: int = TEMPORAL_SCALE
    spatial_scale: int = PATCH
    latent_channels: int = 3 * PATCH * PATCH

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(latent frames, latent height, latent width, channels) of a clip of `frames` × height × width px."""
        ts, sp = self.temporal_scale, self.spatial_scale
        if frames % ts or height % sp or width % sp or frames < 1:
            raise CodecError(f"video: {frames} frames of {height}×{width} px is not whole latents ({ts} frames, {sp}×{sp} px)")
        return frames // ts, height // sp, width // sp, self.latent_channels

    def frame_count(self, latent_frames: int) -> int:
        """Frames decoded from `latent_frames` latent frames (each latent frame is held for 4 frames)."""
        return int(latent_frames) * self.temporal_scale

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames `[T, H, W, 3]` in [0, 1] → latents `[T/4, H/4, W/4, 48]`."""
        x = np.asarray(frames, np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise CodecError(f"video: expected [frames, height, width, 3], got shape {list(x.shape)}")
        f, h, w, c = self.latent_shape(*x.shape[:3])
        sp, d = self.spatial_scale, _dct_matrix(self.spatial_scale)
        x = x.reshape(f, self.temporal_scale, h, sp, w, sp, 3).mean(axis=1) * 2.0 - 1.0  # [f, h, i, w, j, rgb]
        coeff = np.einsum("ui,vj,fhiwjc->fhwcuv", d, d, x) / DCT_SCALE
        return coeff.reshape(f, h, w, c).astype(np.float32)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latents `[F, h, w, 48]` → frames `[4·F, 4·h, 4·w, 3]` in [0, 1] (clipped)."""
        z = np.asarray(latents, np.float32)
        if z.ndim != 4 or z.shape[-1] != self.latent_channels:
            raise CodecError(f"video latents: expected [frames, h, w, {self.latent_channels}], got shape {list(z.shape)}")
        f, h, w, _ = z.shape
        sp, d = self.spatial_scale, _dct_matrix(self.spatial_scale)
        coeff = z.reshape(f, h, w, 3, sp, sp) * DCT_SCALE
        x = np.einsum("ui,vj,fhwcuv->fhiwjc", d, d, coeff).reshape(f, h * sp, w * sp, 3)
        x = np.clip((x + 1.0) * 0.5, 0.0, 1.0)
        return np.repeat(x, self.temporal_scale, axis=0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ToyAudioCodec:
    """Mono 16 kHz in and out (`output_sample_rate` = `sample_rate`): waveforms `[N, 1]`."""

    sample_rate: int = SAMPLE_RATE
    hop: int = AUDIO_HOP
    latent_channels: int = len(AUDIO_FREQS)
    channels: int = 1

    @property
    def output_sample_rate(self) -> int:
        """Decoded audio is at the input rate (no vocoder)."""
        return self.sample_rate

    @property
    def latent_rate(self) -> float:
        """Audio latent frames per second (20)."""
        return self.sample_rate / self.hop

    def latent_shape(self, samples: int) -> tuple[int, int]:
        if samples % self.hop or samples < 1:
            raise CodecError(f"audio: {samples} samples is not a whole number of {self.hop}-sample latent frames")
        return samples // self.hop, self.latent_channels

    def decoded_samples(self, latent_frames: int) -> int:
        """`decode` returns `hop` samples per latent frame."""
        return latent_frames * self.hop

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave `[N, 1]` (N a multiple of 800) → latents `[N/800, 16]` (magnitudes: independent of the clip's phase)."""
        x = np.asarray(wave, np.float64)
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise CodecError(f"audio: expected a mono waveform [samples, 1], got shape {list(x.shape)}")
        x = x[:, 0]
        frames, _ = self.latent_shape(x.shape[0])
        t = np.arange(self.hop) / self.sample_rate
        proj = x.reshape(frames, self.hop) @ np.exp(-2j * np.pi * np.outer(t, AUDIO_FREQS))
        amps = 2.0 * np.abs(proj) / self.hop
        return (8.0 * amps - 1.0).astype(np.float32)

    def decode(self, latents: np.ndarray, start_sample: int = 0) -> np.ndarray:
        """latents `[Fa, 16]` → wave `[Fa·800, 1]` float32 (negative amplitudes clipped to 0); `start_sample` sets
        the phase reference, so consecutive clips decoded with their offsets join without phase jumps."""
        z = np.asarray(latents, np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_channels:
            raise CodecError(f"audio latents: expected [frames, {self.latent_channels}], got shape {list(z.shape)}")
        amps = np.clip((z + 1.0) / 8.0, 0.0, None)
        n = z.shape[0] * self.hop
        t = (start_sample + np.arange(n)) / self.sample_rate
        held = np.repeat(amps, self.hop, axis=0)
        return np.sum(held * np.sin(2 * np.pi * np.outer(t, AUDIO_FREQS)), axis=1, keepdims=True).astype(np.float32)
