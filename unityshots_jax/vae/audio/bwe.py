"""LTX-2.3's `VocoderWithBWE` (ltx-core 1.0.0): 16 kHz BigVGAN vocoder + bandwidth extension to 48 kHz stereo.

The vocoder's waveform is zero-padded to a multiple of the BWE hop, turned into a causal log-mel spectrogram with
the checkpoint's own STFT basis (`mel_stft.stft_fn.forward_basis`, DFT × window rows, real then imaginary) and mel
filterbank (`mel_stft.mel_basis`), and fed to a second generator (`bwe_generator`) whose output is a residual
added to a Hann-windowed-sinc ×3 upsampling of the waveform; the sum is clamped to [−1, 1] and cut to 3× the
vocoder's length.
"""

from __future__ import annotations

import functools
import math

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.vae.audio.config import VocoderWithBWEConfig
from unityshots_jax.vae.audio.layers import PRECISION, Buffer
from unityshots_jax.vae.audio.vocoder import Vocoder, upsample_filtered

LOG_FLOOR = 1e-5
_ZERO_CROSSINGS = 6
_ROLLOFF = 0.99


@functools.lru_cache(maxsize=8)
def hann_sinc_upsampler(ratio: int) -> tuple[np.ndarray, int, int]:
    """(taps `[2·w·ratio + 1]` float64, edge pad w, front crop 2·w·ratio) of the ×`ratio` skip resampler
    (the windowed sinc of torchaudio's `resample`, as ltx-core builds it at init; w = ⌈6 / 0.99⌉)."""
    width = math.ceil(_ZERO_CROSSINGS / _ROLLOFF)
    size = 2 * width * ratio + 1
    t = (np.arange(size) / ratio - width) * _ROLLOFF
    window = np.cos(np.clip(t, -_ZERO_CROSSINGS, _ZERO_CROSSINGS) * math.pi / _ZERO_CROSSINGS / 2) ** 2
    return np.sinc(t) * window * _ROLLOFF / ratio, width, 2 * width * ratio


class STFTBasis(nnx.Module):
    """`forward_basis` `[2·(n_fft/2 + 1), 1, n_fft]` from the checkpoint."""

    def __init__(self, n_fft: int):
        self.forward_basis = Buffer(jnp.zeros((2 * (n_fft // 2 + 1), 1, n_fft), jnp.float32))


class MelSTFT(nnx.Module):
    """Causal log-mel spectrogram with the checkpoint's STFT basis and mel filterbank `[n_mels, n_fft/2 + 1]`."""

    def __init__(self, n_fft: int, hop: int, n_mels: int):
        self.hop = hop
        self.stft_fn = STFTBasis(n_fft)
        self.mel_basis = Buffer(jnp.zeros((n_mels, n_fft // 2 + 1), jnp.float32))

    def __call__(self, wave: jnp.ndarray) -> jnp.ndarray:
        """wave `[B, L, C]` (L a multiple of hop) → log-mel `[B, L/hop, n_mels, C]`; n_fft − hop zeros in front."""
        basis = self.stft_fn.forward_basis[...][:, 0, :].astype(wave.dtype)  # [2F, n_fft]
        n_fft = basis.shape[1]
        x = jnp.pad(jnp.swapaxes(wave, 1, 2), ((0, 0), (0, 0), (max(0, n_fft - self.hop), 0)))
        frames = (x.shape[-1] - n_fft) // self.hop + 1
        idx = np.arange(frames)[:, None] * self.hop + np.arange(n_fft)[None, :]
        spec = jnp.matmul(x[:, :, idx], basis.T, precision=PRECISION)  # [B, C, T, 2F]
        half = spec.shape[-1] // 2
        mag = jnp.sqrt(jnp.square(spec[..., :half]) + jnp.square(spec[..., half:]))
        mel = jnp.matmul(mag, self.mel_basis[...].astype(wave.dtype).T, precision=PRECISION)
        return jnp.transpose(jnp.log(jnp.maximum(mel, LOG_FLOOR)), (0, 2, 3, 1))


class VocoderWithBWE(nnx.Module):
    """log-mel `[B, T, 64, 2]` → waveform `[B, T·hop·ratio, 2]` at `cfg.output_sampling_rate`, in [−1, 1]."""

    def __init__(self, cfg: VocoderWithBWEConfig):
        self.cfg = cfg
        self.vocoder = Vocoder(cfg.vocoder)
        self.bwe_generator = Vocoder(cfg.bwe_generator)
        self.mel_stft = MelSTFT(cfg.n_fft, cfg.hop_length, cfg.num_mels)

    def __call__(self, mel: jnp.ndarray) -> jnp.ndarray:
        """mel `[B, T, 64, 2]` → waveform `[B, T·prod(vocoder rates)·ratio, 2]`."""
        cfg = self.cfg
        x = self.vocoder(mel)
        length = x.shape[1]
        out_length = length * cfg.output_sampling_rate // cfg.input_sampling_rate
        x = jnp.pad(x, ((0, 0), (0, -length % cfg.hop_length), (0, 0)))
        residual = self.bwe_generator(self.mel_stft(x))
        taps, pad, crop = hann_sinc_upsampler(cfg.ratio)
        skip = upsample_filtered(x, jnp.asarray(taps, x.dtype), cfg.ratio, pad, crop)
        return jnp.clip(residual + skip, -1.0, 1.0)[:, :out_length]

