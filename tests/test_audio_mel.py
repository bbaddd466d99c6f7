"""The JAX mel front end against ltx-core 1.0.0's `AudioProcessor` (torchaudio resample + MelSpectrogram)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.reference.torchaudio_compat import install as install_torchaudio_hook
from unityshots_jax.vae.audio.config import AudioVAEConfig
from unityshots_jax.vae.audio.mel import AudioInputError, check_voice_clip, min_samples, waveform_to_mel

install_torchaudio_hook()  # before `ltx_core.model.audio_vae` is imported (it imports torchaudio)

# (config, sample rate, samples, channels): the recipe front end, then shapes and rates the port was not tuned on
CASES = [
    (AudioVAEConfig(), 16000, 3001, 2),
    (AudioVAEConfig(), 44100, 7001, 2),
    (AudioVAEConfig(), 48000, 4999, 1),
    (AudioVAEConfig(mel_bins=32, n_fft=512, mel_hop_length=128), 22050, 3333, 1),
    (AudioVAEConfig(mel_bins=16, n_fft=256, mel_hop_length=64, sample_rate=8000), 24000, 2048, 2),
]


def _reference(cfg: AudioVAEConfig, wave: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from ltx_core.types import Audio

    from unityshots_jax.reference.tiny_audio import AudioProcessor

    outs = []
    for dtype in (torch.float32, torch.float64):
        proc = AudioProcessor(target_sample_rate=cfg.sample_rate, mel_bins=cfg.mel_bins,
                              mel_hop_length=cfg.mel_hop_length, n_fft=cfg.n_fft).to(dtype)
        x = torch.from_numpy(np.ascontiguousarray(wave.T[None])).to(dtype)
        if x.shape[1] == 1:  # ltx-core takes stereo; mono clips are duplicated before it
            x = x.repeat(1, 2, 1)
        outs.append(proc.waveform_to_mel(Audio(x, rate))[0].double().numpy())
    return outs[0], outs[1]


@pytest.mark.parametrize("cfg,rate,samples,channels", CASES)
def test_mel_matches_audio_processor(cfg, rate, samples, channels):
    rng = np.random.default_rng(samples)
    t = np.arange(samples) / rate
    tone = 0.4 * np.sin(2 * np.pi * 440.0 * t)[:, None]
    wave = (tone + 0.1 * rng.standard_normal((samples, channels))).astype(np.float32)
    ours = np.asarray(waveform_to_mel(wave, rate, cfg))
    ref32, ref64 = _reference(cfg, wave, rate)
    assert ours.shape == ref64.shape == (2, 1 + -(-samples * cfg.sample_rate // rate) // cfg.mel_hop_length,
                                         cfg.mel_bins)
    assert_parity(f"mel {rate} Hz {channels} ch", ours, ref32, ref64)


def test_shortest_clip_is_accepted_and_one_less_refused():
    cfg = AudioVAEConfig()
    n = min_samples(cfg, 44100)
    wave = np.full((n, 2), 0.1, np.float32)
    assert waveform_to_mel(wave, 44100, cfg).shape[1] >= 1
    with pytest.raises(AudioInputError, match="too short"):
        waveform_to_mel(wave[:-1], 44100, cfg)


@pytest.mark.parametrize("wave,match", [
    (np.zeros((4000,), np.float32), "samples, channels"),
    (np.zeros((4000, 3), np.float32), "3 channels"),
    (np.full((4000, 2), np.nan, np.float32), "NaN"),
])
def test_bad_waveforms_are_refused(wave, match):
    with pytest.raises(AudioInputError, match=match):
        waveform_to_mel(wave, 16000, AudioVAEConfig())


def test_voice_clip_checks():
    rate = 16000
    voice = 0.3 * np.sin(np.linspace(0, 2000, rate))[:, None].astype(np.float32)
    check_voice_clip(voice, rate)
    with pytest.raises(AudioInputError, match="silent"):
        check_voice_clip(np.zeros((rate, 2), np.float32), rate)
    with pytest.raises(AudioInputError, match="too short"):
        check_voice_clip(voice[: rate // 4], rate)


def test_torchaudio_imports_through_the_shim_without_touching_site_packages():
    code = (
        "from unityshots_jax.reference.torchaudio_compat import import_torchaudio\n"
        "ta = import_torchaudio()\n"
        "import torch, ltx_core.model.audio_vae\n"
        "x = torch.randn(1, 4410)\n"
        "print(tuple(ta.functional.resample(x, 44100, 16000).shape))\n"
    )
    import importlib.util

    lib = os.path.join(os.path.dirname(importlib.util.find_spec("torchaudio").origin), "lib")
    before = sorted(os.listdir(lib))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(1, 1600)"
    assert sorted(os.listdir(lib)) == before
