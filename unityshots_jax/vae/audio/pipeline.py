"""Waveform ↔ latent with the loaded audio VAE and vocoder (ltx-core's `encode_audio` / `decode_audio`), jitted."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.vae.audio.decoder import AudioDecoder
from unityshots_jax.vae.audio.encoder import AudioEncoder
from unityshots_jax.vae.audio.mel import waveform_to_mel


@nnx.jit
def encode_mel(encoder: AudioEncoder, mel: jnp.ndarray) -> jnp.ndarray:
    """log-mel `[B, T, mel_bins, 2]` → normalised latent `[B, F, mel', z]`."""
    return encoder(mel)


def encode_waveform(encoder: AudioEncoder, wave: np.ndarray, sample_rate: int, *, dtype=jnp.float32,
                    bucket: int | None = None) -> jnp.ndarray:
    """A clip `[N, channels]` at `sample_rate` → normalised latent `[1, F, mel', z]` (ltx-core's `encode_audio`).

    The mel front end runs in float32; its output is cast to `dtype` for the encoder (as ltx-core casts it to
    the encoder's dtype). bucket: pad the mel frames at the end to a multiple of `bucket` and crop the latent
    back, so clips of many lengths share a few compiled encoders; exact, because the encoder is causal in time.
    """
    mel = jnp.transpose(waveform_to_mel(wave, sample_rate, encoder.cfg), (1, 2, 0))[None]  # [1, T, mel_bins, C]
    frames = mel.shape[1]
    latent_frames = frames
    for _ in range(encoder.cfg.levels - 1):
        latent_frames = (latent_frames - 1) // 2 + 1
    if bucket:
        mel = jnp.pad(mel, ((0, 0), (0, -frames % bucket), (0, 0), (0, 0)))
    return encode_mel(encoder, mel.astype(dtype))[:, :latent_frames]


@nnx.jit
def decode_latent(decoder: AudioDecoder, latent: jnp.ndarray) -> jnp.ndarray:
    """latent `[B, F, mel', z]` → log-mel `[B, max(4F − 3, 1), mel_bins, out_ch]`."""
    return decoder(latent)


@nnx.jit
def vocode(vocoder: nnx.Module, mel: jnp.ndarray) -> jnp.ndarray:
    """log-mel `[B, T, 64, 2]` → waveform `[B, N, 2]` with a `Vocoder` or `VocoderWithBWE`."""
    return vocoder(mel)


def decode_waveform(decoder: AudioDecoder, vocoder: nnx.Module, latent: jnp.ndarray) -> jnp.ndarray:
    """latent `[B, F, mel', z]` → waveform `[B, (4F − 3)·hop, 2]` at the vocoder's output rate (`decode_audio`).

    Two compiled programs (decoder, vocoder), so a vocoder compiled for a mel length is reused."""
    return vocode(vocoder, decode_latent(decoder, latent))
