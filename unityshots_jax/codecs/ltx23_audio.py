"""The LTX-2.3 audio codec: waveform ↔ audio latent tokens with the mel front end, audio VAE and VocoderWithBWE.

Implements `AudioCodec` (`codecs/base.py`) for the `ltx23` bundle: `encode` takes stereo (or mono) audio at
`sample_rate` (48 kHz, so decode → encode round-trips; `encode_at` takes any rate), resamples it to the VAE's
16 kHz, computes the log-mel spectrogram and encodes it to normalised latents, patchified to the transformer's
audio tokens `[Fa, z·mel']` (25 per second, 128 features for the real model). `decode` runs the decoder and the
vocoder (+ BWE) to 48 kHz stereo. One clip at a time, numpy float32 in and out.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from unityshots_jax.vae.audio.config import LATENT_DOWNSAMPLE, AudioVAEConfig, VocoderWithBWEConfig
from unityshots_jax.vae.audio.encoder import patchify, unpatchify
from unityshots_jax.vae.audio.loading import load_audio_vae, load_vocoder, open_weights
from unityshots_jax.vae.audio.mel import AudioInputError
from unityshots_jax.vae.audio.pipeline import decode_latent, encode_waveform, vocode

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
ENCODE_BUCKET = 64  # mel frames (0.64 s): clip lengths share compiled encoders (exact: the encoder is causal)


class LTX23AudioCodec:
    """`AudioCodec` over the official LTX-2.3 (or 19B) audio VAE and vocoder loaded from `weights`.

    weights: the official single-file checkpoint or a converted directory; dtype: "float32" or "bfloat16"
    (parameters and activations of the audio VAE). The mel front end and the vocoder + BWE always run in float32,
    as ltx-core after 1.0.0 runs the vocoder (float32 autocast); measured bf16 gaps in docs/design.md ("Mel front end, audio VAE, vocoder + BWE").
    """

    channels = 2

    def __init__(self, weights: str, dtype: str = "float32"):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype: {dtype!r} is not supported (one of {sorted(_DTYPES)})")
        self.dtype = _DTYPES[dtype]
        source = open_weights(weights)
        self.cfg: AudioVAEConfig
        self.cfg, vae = load_audio_vae(source, dtype=self.dtype)
        self.encoder, self.decoder = vae["encoder"], vae["decoder"]
        self.vocoder_cfg, self.vocoder = load_vocoder(source, dtype=jnp.float32)
        self.output_sample_rate = self.vocoder_cfg.output_sampling_rate
        self.sample_rate = self.output_sample_rate
        self.latent_channels = self.cfg.latent_channels
        if self.cfg.mel_bins * self.cfg.out_ch != 128:
            raise ValueError(f"{weights}: the vocoder takes 2 × 64 mel bins; the audio VAE gives "
                             f"{self.cfg.out_ch} × {self.cfg.mel_bins}")

    @property
    def latent_rate(self) -> float:
        """Audio latent frames per second (25 for LTX-2.3)."""
        return self.cfg.sample_rate / self.cfg.mel_hop_length / LATENT_DOWNSAMPLE

    def latent_frames(self, samples: int, sample_rate: int) -> int:
        """Latent frames of a clip of `samples` samples at `sample_rate`."""
        resampled = -(-samples * self.cfg.sample_rate // sample_rate)
        frames = 1 + resampled // self.cfg.mel_hop_length
        for _ in range(self.cfg.levels - 1):
            frames = (frames - 1) // 2 + 1
        return frames

    def latent_shape(self, samples: int) -> tuple[int, int]:
        """(Fa, Ca) of `samples` samples at `sample_rate`."""
        return self.latent_frames(samples, self.sample_rate), self.latent_channels

    def encode_at(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
        """wave `[N, 1 or 2]` (or mono `[N]`) at `sample_rate` → latent tokens `[Fa, Ca]` float32."""
        wave = np.asarray(wave)
        if wave.ndim == 1:
            wave = wave[:, None]
        latent = encode_waveform(self.encoder, wave, sample_rate, dtype=self.dtype, bucket=ENCODE_BUCKET)  # [1,F,m,z]
        return np.asarray(patchify(latent)[0], np.float32)

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave `[N, channels]` at `sample_rate` → latent tokens `[Fa, Ca]`."""
        return self.encode_at(wave, self.sample_rate)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latent tokens `[Fa, Ca]` → wave `[(4·Fa − 3)·hop, 2]` at `output_sample_rate`, in [−1, 1]."""
        latents = np.asarray(latents)
        if latents.ndim != 2 or latents.shape[1] != self.latent_channels or latents.shape[0] < 1:
            raise AudioInputError(f"audio latents: expected [frames ≥ 1, {self.latent_channels}], got "
                                  f"{list(latents.shape)}")
        tokens = jnp.asarray(latents[None], self.dtype)
        mel = decode_latent(self.decoder, unpatchify(tokens, self.cfg.z_channels))
        return np.asarray(vocode(self.vocoder, mel.astype(jnp.float32))[0], np.float32)

    def decoded_samples(self, latent_frames: int) -> int:
        """Samples (at `output_sample_rate`) `decode` returns for `latent_frames` latent frames (the causal decoder
        gives 4·F − 3 mel frames)."""
        return self.cfg.decoded_frames(latent_frames) * self._samples_per_mel

    def covering_latent_frames(self, samples: int) -> int:
        """The fewest latent frames whose decode is at least `samples` output samples long (a shot's audio is
        generated this long and trimmed to the shot)."""
        mel = -(-samples // self._samples_per_mel)
        return max(1, -(-(mel + LATENT_DOWNSAMPLE - 1) // LATENT_DOWNSAMPLE))

    @property
    def _samples_per_mel(self) -> int:
        return self.output_sample_rate * self.cfg.mel_hop_length // self.cfg.sample_rate

    @property
    def has_bwe(self) -> bool:
        return isinstance(self.vocoder_cfg, VocoderWithBWEConfig)
