"""Tiny audio VAE / vocoder checkpoints in the official layout and their ltx-core outputs in float32 and float64."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import os
import shutil
import tempfile

import numpy as np

from unityshots_jax.reference.torchaudio_compat import install as _install_torchaudio_hook

_install_torchaudio_hook()  # before any test imports ltx_core.model.audio_vae (which imports torchaudio)


@dataclasses.dataclass(frozen=True)
class AudioSpec:
    """One tiny audio checkpoint: audio VAE sizes (`tiny_audio_vae` kwargs) and the vocoder kind."""

    ch: int = 32
    z_channels: int = 2
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    mel_bins: int = 64
    n_fft: int = 1024
    hop: int = 160
    vocoder: str = "bwe"  # "bwe" (2.3), "hifigan" (19B) or "none"
    vocoder_channels: int = 64
    bwe_channels: int = 32
    seed: int = 0

    def config(self) -> dict:
        from unityshots_jax.reference import tiny_audio

        cfg = {"audio_vae": tiny_audio.tiny_audio_vae(
            ch=self.ch, z_channels=self.z_channels, ch_mult=self.ch_mult, num_res_blocks=self.num_res_blocks,
            mel_bins=self.mel_bins, n_fft=self.n_fft, hop=self.hop)}
        if self.vocoder == "bwe":
            cfg["vocoder"] = tiny_audio.tiny_vocoder_bwe(vocoder_channels=self.vocoder_channels,
                                                         bwe_channels=self.bwe_channels)
        elif self.vocoder == "hifigan":
            cfg["vocoder"] = tiny_audio.tiny_hifigan_vocoder(channels=self.vocoder_channels)
        return cfg


@dataclasses.dataclass(frozen=True)
class AudioReference:
    """A tiny official-layout file and its ltx-core modules loaded from it in float32 and float64."""

    path: str
    m32: dict
    m64: dict

    def both(self, fn, *arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fn(m32, *float32 tensors), fn(m64, *float64 tensors)) as float64 numpy arrays."""
        import torch

        with torch.no_grad():
            out = [fn(models, *[torch.from_numpy(np.array(a, dtype)) for a in arrays])
                   for models, dtype in ((self.m32, np.float32), (self.m64, np.float64))]
        return tuple(o.double().numpy() for o in out)


_ROOT: list[str] = []


@functools.lru_cache(maxsize=None)
def audio_reference(spec: AudioSpec) -> AudioReference:
    """The spec's tiny file (made once per test process, in a temporary folder removed at exit) and its
    reference modules."""
    import torch

    from unityshots_jax.reference import tiny_audio

    if not _ROOT:
        _ROOT.append(tempfile.mkdtemp(prefix="unityshots_audio_"))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    path = os.path.join(_ROOT[0], f"audio{audio_reference.cache_info().currsize}.safetensors")
    config = spec.config()
    tiny_audio.save_official(tiny_audio.build_random_audio(config, spec.seed), config, path)
    return AudioReference(path, tiny_audio.load_official(path), tiny_audio.load_official(path, torch.float64))
