"""The vocoder (BigVGAN v2 / HiFi-GAN) and VocoderWithBWE against ltx-core 1.0.0, loaded from the official layout.

The tiny reference files perturb every Kaiser-sinc filter buffer away from its formula value, so parity also
proves the filters are read from the checkpoint rather than recomputed.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from helpers.audio import AudioSpec, audio_reference
from unityshots_jax.checkpoint.safetensors_io import CheckpointError
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.vae.audio.config import AudioConfigError, VocoderWithBWEConfig, vocoder_config
from unityshots_jax.vae.audio.loading import load_audio_vae, load_vocoder
from unityshots_jax.vae.audio.pipeline import decode_waveform, vocode

RECIPE = AudioSpec()  # vocoder 64 channels, BWE 32, real rates and kernels
OTHER = AudioSpec(ch=48, z_channels=3, ch_mult=(1, 2, 2), vocoder_channels=128, bwe_channels=64, seed=3)
HIFIGAN = AudioSpec(vocoder="hifigan", vocoder_channels=32, seed=4)


def _mel(frames: int, seed: int) -> np.ndarray:
    """A log-mel-like input `[1, 2, T, 64]` (values around log-magnitudes)."""
    return (np.random.default_rng(seed).standard_normal((1, 2, frames, 64)) - 2.0).astype(np.float32)


def _ours(x: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(x.transpose(0, 2, 3, 1))  # [B, C, T, F] → [B, T, F, C]


@pytest.mark.parametrize("spec,frames", [(RECIPE, 5), (OTHER, 3)], ids=["recipe", "wide-odd"])
def test_bigvgan_vocoder_matches_reference(spec, frames):
    ref = audio_reference(spec)
    _, voc = load_vocoder(ref.path)
    mel = _mel(frames, frames)
    out = np.asarray(vocode(voc.vocoder, _ours(mel))).transpose(0, 2, 1)
    ref32, ref64 = ref.both(lambda m, x: m["vocoder"].vocoder(x), mel)
    assert out.shape == ref64.shape == (1, 2, frames * 160)
    assert np.mean(np.abs(ref64) < 1) > 0.9  # mostly unclamped, so the comparison sees the network
    assert_parity("vocoder 16 kHz", out, ref32, ref64)


@pytest.mark.parametrize("spec,frames", [(RECIPE, 5), (OTHER, 9)], ids=["recipe", "wide-odd"])
def test_vocoder_with_bwe_matches_reference(spec, frames):
    ref = audio_reference(spec)
    cfg, voc = load_vocoder(ref.path)
    assert isinstance(cfg, VocoderWithBWEConfig) and cfg.output_sampling_rate == 48000
    mel = _mel(frames, 10 + frames)
    out = np.asarray(vocode(voc, _ours(mel))).transpose(0, 2, 1)
    ref32, ref64 = ref.both(lambda m, x: m["vocoder"](x), mel)
    assert out.shape == ref64.shape == (1, 2, frames * 480)
    assert_parity("vocoder + BWE 48 kHz", out, ref32, ref64)


@pytest.mark.parametrize("spec,latent_frames", [(RECIPE, 2), (OTHER, 3)], ids=["recipe", "wide-odd"])
def test_decode_audio_latent_to_48k_matches_reference(spec, latent_frames):
    from ltx_core.model.audio_vae import decode_audio

    ref = audio_reference(spec)
    vae_cfg, vae = load_audio_vae(ref.path, parts=("decoder",))
    _, voc = load_vocoder(ref.path)
    shape = (1, spec.z_channels, latent_frames, vae_cfg.latent_mel_bins)
    latent = np.random.default_rng(latent_frames).standard_normal(shape).astype(np.float32)
    out = np.asarray(decode_waveform(vae["decoder"], voc, _ours(latent)))[0].T
    ref32, ref64 = ref.both(lambda m, x: decode_audio(x, m["decoder"], m["vocoder"]).waveform, latent)
    assert out.shape == ref64.shape == (2, (4 * latent_frames - 3) * 480)
    assert_parity("decode_audio", out, ref32, ref64)


@pytest.mark.parametrize("frames", [4, 3])
def test_hifigan_vocoder_matches_reference(frames):
    ref = audio_reference(HIFIGAN)
    cfg, voc = load_vocoder(ref.path)
    assert not cfg.is_amp and cfg.output_sampling_rate == 16000
    mel = _mel(frames, 20 + frames)
    out = np.asarray(vocode(voc, _ours(mel))).transpose(0, 2, 1)
    ref32, ref64 = ref.both(lambda m, x: m["vocoder"](x), mel)
    assert out.shape == ref64.shape == (1, 2, frames * cfg.hop)
    assert_parity("HiFi-GAN vocoder", out, ref32, ref64)


@pytest.mark.parametrize("key", [
    "vocoder.vocoder.resblocks.4.acts1.2.upsample.filter",
    "vocoder.bwe_generator.act_post.downsample.lowpass.filter",
    "vocoder.mel_stft.stft_fn.forward_basis",
])
def test_missing_vocoder_tensor_is_named(tmp_path, key):
    from helpers.checkpoints import rewrite

    bad = rewrite(audio_reference(RECIPE).path, str(tmp_path / "bad.safetensors"), drop=(key,))
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.") + ".*missing"):
        load_vocoder(bad)


@pytest.mark.parametrize("where,change,key", [
    ("vocoder", {"activation": "snake"}, "vocoder.vocoder.activation"),
    ("bwe", {"resblock": "2"}, "vocoder.bwe.resblock"),
    ("bwe", {"stereo": False}, "vocoder.bwe.stereo"),
    ("bwe", {"upsample_rates": [6, 5, 2, 2]}, "vocoder.bwe.upsample_kernel_sizes"),
    ("bwe", {"num_mels": None}, "vocoder.bwe.num_mels"),
])
def test_unsupported_vocoder_config_is_refused_naming_the_key(where, change, key):
    config = RECIPE.config()
    config["vocoder"][where].update(change)
    with pytest.raises(AudioConfigError, match=key.replace(".", r"\.")):
        vocoder_config(config)


def test_19b_vocoder_needs_resblock_1():
    config = HIFIGAN.config()
    config["vocoder"]["resblock"] = "2"
    with pytest.raises(AudioConfigError, match=r"vocoder\.resblock"):
        vocoder_config(config)


def test_full_size_layout_matches_ltx_core():
    """Every key and shape of the released 2.3 audio VAE and vocoder (Appendix A.5, A.6, A.8), built abstractly."""
    from flax import nnx

    from unityshots_jax.reference.tiny_audio import full_size_keys, ltx23_audio_config
    from unityshots_jax.vae.audio.bwe import VocoderWithBWE
    from unityshots_jax.vae.audio.config import audio_vae_config
    from unityshots_jax.vae.audio.decoder import AudioDecoder
    from unityshots_jax.vae.audio.encoder import AudioEncoder
    from unityshots_jax.vae.audio.loading import UNUSED_OK, expected_tensors, vae_key, vocoder_key

    config = ltx23_audio_config()
    theirs = full_size_keys(config)
    vae_cfg, voc_cfg = audio_vae_config(config), vocoder_config(config)
    with nnx.use_eager_sharding(False):
        ours = {
            "encoder": expected_tensors(nnx.eval_shape(lambda: AudioEncoder(vae_cfg)), vae_key("encoder")),
            "decoder": expected_tensors(nnx.eval_shape(lambda: AudioDecoder(vae_cfg)), vae_key("decoder")),
            "vocoder": expected_tensors(nnx.eval_shape(lambda: VocoderWithBWE(voc_cfg)), vocoder_key),
        }
    for key in UNUSED_OK:
        theirs["vocoder"].pop(key)
    assert {k: len(v) for k, v in theirs.items()} == {"encoder": 46, "decoder": 58, "vocoder": 1226}
    assert ours == theirs
    assert vae_cfg.latent_channels == 128
