"""The audio VAE's mel front end in JAX: resample → stereo 16 kHz → STFT magnitude → Slaney mel → log.

Matches ltx-core 1.0.0's `AudioProcessor.waveform_to_mel` (torchaudio `functional.resample` with its default
windowed-sinc (`sinc_interp_hann`, 6 zero crossings, roll-off 0.99) and `transforms.MelSpectrogram` with a
periodic Hann window, `center=True` reflect padding, magnitude (power 1), Slaney mel scale and Slaney area norm,
0 Hz to sample_rate/2), then `log(clamp(mel, 1e-5))`. Filters, windows and filterbanks are built on the host in
float64 and used in float32.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from unityshots_jax.vae.audio.config import AudioVAEConfig
from unityshots_jax.vae.audio.layers import PRECISION

LOG_FLOOR = 1e-5


class AudioInputError(ValueError):
    """A waveform the audio front end cannot take (shape, channels, length, silence); the message says which."""


# ---------------------------------------------------------------------------------------------- resampling
@functools.lru_cache(maxsize=32)
def resample_kernel(orig: int, new: int, zero_crossings: int = 6, rolloff: float = 0.99) -> tuple[np.ndarray, int]:
    """Polyphase windowed-sinc filters for `orig` → `new` Hz (rates reduced by their gcd).

    Returns (kernel `[new', 2·width + orig']` float64, width): output sample `new'·j + p` is the dot product of
    kernel row p with the zero-padded input starting at `orig'·j` (input padded by `width` in front).
    """
    g = math.gcd(orig, new)
    orig, new = orig // g, new // g
    cutoff = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / cutoff)
    taps = np.arange(-width, width + orig, dtype=np.float64) / orig
    t = (-np.arange(new, dtype=np.float64)[:, None] / new + taps[None, :]) * cutoff
    t = np.clip(t, -zero_crossings, zero_crossings)
    window = np.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    safe = np.where(t == 0, 1.0, t)
    sinc = np.where(t == 0, 1.0, np.sin(safe) / safe)
    return sinc * window * (cutoff / orig), width


def resample(wave: jnp.ndarray, orig: int, new: int) -> jnp.ndarray:
    """wave `[channels, N]` at `orig` Hz → `[channels, ceil(N·new/orig)]` at `new` Hz (torchaudio's default)."""
    if orig == new:
        return wave
    g = math.gcd(orig, new)
    o, n = orig // g, new // g
    kernel, width = resample_kernel(orig, new)
    length = wave.shape[-1]
    x = jnp.pad(wave, ((0, 0), (width, width + o)))[:, :, None]
    w = jnp.asarray(kernel.T[:, None, :], wave.dtype)  # [taps, 1, new']
    y = jax.lax.conv_general_dilated(x, w, (o,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"), precision=PRECISION)
    y = y.reshape(wave.shape[0], -1)
    return y[:, : math.ceil(n * length / o)]


# ---------------------------------------------------------------------------------------------- mel
def _hz_to_slaney(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, np.float64)
    lin = hz / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(hz, 1e-300) / 1000.0) / (math.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, lin)


def _slaney_to_hz(mel: np.ndarray) -> np.ndarray:
    lin = mel * (200.0 / 3)
    log = 1000.0 * np.exp((math.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, lin)


@functools.lru_cache(maxsize=16)
def slaney_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int) -> np.ndarray:
    """`[n_freqs, n_mels]` triangular Slaney-scale filters with Slaney area normalisation (float64)."""
    freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    pts = _slaney_to_hz(np.linspace(_hz_to_slaney(f_min), _hz_to_slaney(f_max), n_mels + 2))
    diff = pts[1:] - pts[:-1]
    slopes = pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    return fb * (2.0 / (pts[2: n_mels + 2] - pts[:n_mels]))[None, :]


def hann_window(n: int) -> np.ndarray:
    """Periodic Hann window of length n (float64)."""
    return 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n) / n)


def stft_magnitude(wave: jnp.ndarray, n_fft: int, hop: int) -> jnp.ndarray:
    """wave `[channels, N]` → |STFT| `[channels, 1 + N // hop, n_fft // 2 + 1]` (centred, reflect-padded, Hann)."""
    pad = n_fft // 2
    x = jnp.pad(wave, ((0, 0), (pad, pad)), mode="reflect")
    frames = 1 + (x.shape[-1] - n_fft) // hop
    idx = np.arange(frames)[:, None] * hop + np.arange(n_fft)[None, :]
    segments = x[:, idx] * jnp.asarray(hann_window(n_fft), wave.dtype)
    return jnp.abs(jnp.fft.rfft(segments, axis=-1)).astype(wave.dtype)


def log_mel(wave: jnp.ndarray, cfg: AudioVAEConfig) -> jnp.ndarray:
    """wave `[channels, N]` at `cfg.sample_rate` → log-mel `[channels, 1 + N // hop, mel_bins]`."""
    mag = stft_magnitude(wave, cfg.n_fft, cfg.mel_hop_length)
    fb = slaney_filterbank(cfg.n_fft // 2 + 1, 0.0, cfg.sample_rate / 2.0, cfg.mel_bins, cfg.sample_rate)
    mel = jnp.matmul(mag, jnp.asarray(fb, wave.dtype), precision=PRECISION)
    return jnp.log(jnp.maximum(mel, LOG_FLOOR))


def min_samples(cfg: AudioVAEConfig, sample_rate: int) -> int:
    """Fewest input samples at `sample_rate` whose resampled length allows the centred STFT (> n_fft/2)."""
    need = cfg.n_fft // 2 + 1
    return max(1, math.ceil((need - 1) * sample_rate / cfg.sample_rate) + 1)


def prepare_waveform(wave: np.ndarray, sample_rate: int, cfg: AudioVAEConfig) -> np.ndarray:
    """Check a clip `[N, channels]` (channels 1 or cfg.in_channels) and return it as float32 `[in_channels, N]`.

    Mono is duplicated to every channel. Raises `AudioInputError` for a wrong rank or channel count, a
    non-finite sample, a non-positive sample rate, or a clip too short for the STFT.
    """
    wave = np.asarray(wave)
    if wave.ndim != 2:
        raise AudioInputError(f"waveform: expected [samples, channels], got shape {list(wave.shape)}")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioInputError(f"sample_rate: expected a positive integer, got {sample_rate!r}")
    n, channels = wave.shape
    if channels not in (1, cfg.in_channels):
        raise AudioInputError(f"waveform: {channels} channels; the audio VAE takes 1 (mono) or {cfg.in_channels}")
    if n < min_samples(cfg, int(sample_rate)):
        raise AudioInputError(
            f"waveform: {n} samples at {sample_rate} Hz is too short; the mel front end needs at least "
            f"{min_samples(cfg, int(sample_rate))} ({cfg.n_fft // 2 + 1} at {cfg.sample_rate} Hz)")
    wave = wave.astype(np.float32)
    if not np.all(np.isfinite(wave)):
        raise AudioInputError("waveform: contains NaN or infinite samples")
    return np.ascontiguousarray(np.broadcast_to(wave.T, (cfg.in_channels, n)))


@functools.partial(jax.jit, static_argnames=("sample_rate", "cfg"))
def _mel(wave: jnp.ndarray, sample_rate: int, cfg: AudioVAEConfig) -> jnp.ndarray:
    return log_mel(resample(wave, sample_rate, cfg.sample_rate), cfg)


def waveform_to_mel(wave: np.ndarray, sample_rate: int, cfg: AudioVAEConfig) -> jnp.ndarray:
    """A clip `[N, channels]` at `sample_rate` → log-mel `[in_channels, frames, mel_bins]` float32 at
    `cfg.sample_rate` (frames = 1 + N' // hop, N' the resampled length). See `prepare_waveform` for the checks."""
    x = prepare_waveform(wave, sample_rate, cfg)
    return _mel(jnp.asarray(x), int(sample_rate), cfg)


VOICE_MIN_SECONDS = 0.5
VOICE_SILENCE_PEAK = 1e-4  # −80 dBFS


def check_voice_clip(wave: np.ndarray, sample_rate: int, *, name: str = "voice clip") -> None:
    """Refuse a reference voice clip `[N, channels]` that is shorter than 0.5 s or silent (peak below −80 dBFS).

    The front end itself encodes any clip long enough for its STFT (training audio may well be silent); a voice
    reference must carry a voice, so the story inputs check it with this before encoding.
    """
    wave = np.asarray(wave)
    if wave.ndim != 2 or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioInputError(f"{name}: expected [samples, channels] and a positive sample rate, got shape "
                              f"{list(wave.shape)} at {sample_rate!r} Hz")
    seconds = wave.shape[0] / sample_rate
    if seconds < VOICE_MIN_SECONDS:
        raise AudioInputError(f"{name}: {seconds:.3f} s is too short (at least {VOICE_MIN_SECONDS} s)")
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if not peak >= VOICE_SILENCE_PEAK:
        raise AudioInputError(f"{name}: is silent (peak {peak:.2g}, below {VOICE_SILENCE_PEAK:g})")
