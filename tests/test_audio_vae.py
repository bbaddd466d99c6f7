"""The audio VAE encoder and decoder against ltx-core 1.0.0, loaded by our loader from the official layout."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from helpers.audio import AudioSpec, audio_reference
from unityshots_jax.checkpoint.safetensors_io import CheckpointError
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.vae.audio.config import AudioConfigError, audio_vae_config
from unityshots_jax.vae.audio.loading import load_audio_vae, load_vocoder
from unityshots_jax.vae.audio.pipeline import decode_latent, encode_waveform

RECIPE = AudioSpec()  # ch 32, z 2, ch_mult [1, 2, 4], 1 res block, mel 64 (with the vocoder: shared file)
# not tuned on: two levels with channel change and 2 blocks (decoder pads 2F − 1 → 4F − 3 frames), four levels
# with a repeated multiplier (decoder crops 8F − 7 → 4F − 3), other mel bin counts
SPECS = [
    RECIPE,
    AudioSpec(ch=24, z_channels=3, ch_mult=(1, 2), num_res_blocks=2, mel_bins=16, vocoder="none", seed=1),
    AudioSpec(ch=16, z_channels=4, ch_mult=(1, 1, 2, 2), mel_bins=32, vocoder="none", seed=2),
]


def _nchw(x) -> np.ndarray:
    return np.asarray(x).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"ch{s.ch}-mult{len(s.ch_mult)}-mel{s.mel_bins}")
@pytest.mark.parametrize("frames", [21, 18])
def test_encoder_matches_reference(spec, frames):
    ref = audio_reference(spec)
    cfg, ours = load_audio_vae(ref.path, parts=("encoder",))
    mel = np.random.default_rng(frames).standard_normal((1, 2, frames, spec.mel_bins)).astype(np.float32)
    out = _nchw(ours["encoder"](jnp.asarray(mel.transpose(0, 2, 3, 1))))
    ref32, ref64 = ref.both(lambda m, x: m["encoder"](x), mel)
    assert out.shape == ref64.shape and out.shape[-1] == cfg.latent_mel_bins
    assert_parity("audio encoder", out, ref32, ref64)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"ch{s.ch}-mult{len(s.ch_mult)}-mel{s.mel_bins}")
@pytest.mark.parametrize("latent_frames", [6, 1])
def test_decoder_matches_reference(spec, latent_frames):
    ref = audio_reference(spec)
    cfg, ours = load_audio_vae(ref.path, parts=("decoder",))
    shape = (1, spec.z_channels, latent_frames, cfg.latent_mel_bins)
    latent = np.random.default_rng(latent_frames).standard_normal(shape).astype(np.float32)
    out = _nchw(decode_latent(ours["decoder"], jnp.asarray(latent.transpose(0, 2, 3, 1))))
    ref32, ref64 = ref.both(lambda m, x: m["decoder"](x), latent)
    assert out.shape == ref64.shape == (1, 2, max(4 * latent_frames - 3, 1), spec.mel_bins)
    assert_parity("audio decoder", out, ref32, ref64)


@pytest.mark.parametrize("spec,rate,samples", [(SPECS[0], 44100, 9001), (SPECS[2], 48000, 6000)])
def test_waveform_encode_matches_encode_audio(spec, rate, samples):
    """ltx-core's `encode_audio` (resample, mel, encoder) from a clip at another rate."""
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.types import Audio

    from unityshots_jax.reference.tiny_audio import audio_processor

    ref = audio_reference(spec)
    _, ours = load_audio_vae(ref.path, parts=("encoder",))
    wave = (0.2 * np.random.default_rng(samples).standard_normal((samples, 2))).astype(np.float32)
    out = _nchw(encode_waveform(ours["encoder"], wave, rate))

    def run(m, x):
        proc = audio_processor(m["encoder"]).to(x.dtype)
        return encode_audio(Audio(x.T[None].contiguous(), rate), m["encoder"], proc)

    ref32, ref64 = ref.both(run, wave)
    assert out.shape == ref64.shape
    assert_parity("encode_audio", out, ref32, ref64)


def test_bucketed_encode_equals_exact_length_encode():
    """Padding the mel at the end to a bucket and cropping the latent changes nothing (the encoder is causal)."""
    _, ours = load_audio_vae(audio_reference(SPECS[2]).path, parts=("encoder",))
    wave = (0.2 * np.random.default_rng(5).standard_normal((5003, 2))).astype(np.float32)
    exact = np.asarray(encode_waveform(ours["encoder"], wave, 16000))
    bucketed = np.asarray(encode_waveform(ours["encoder"], wave, 16000, bucket=16))
    assert bucketed.shape == exact.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(bucketed, exact, rtol=0, atol=1e-6 * np.max(np.abs(exact)))


def test_loads_from_a_converted_directory(checkpoint, tmp_path):
    """A full file (tiny transformer + audio VAE) through `convert`: the audio tensors come from extras."""
    from helpers.checkpoints import read_all, rewrite
    from unityshots_jax.checkpoint.ltx_convert import convert

    ref = audio_reference(RECIPE)
    audio_tensors, audio_meta, _ = read_all(ref.path)
    _, meta, _ = read_all(checkpoint())
    config = {**json.loads(meta["config"]), **json.loads(audio_meta["config"])}
    full = rewrite(checkpoint(), str(tmp_path / "full.safetensors"), add=audio_tensors,
                   metadata={**meta, "config": json.dumps(config)})
    convert(full, str(tmp_path / "converted"), progress=False)
    _, from_dir = load_audio_vae(str(tmp_path / "converted"))
    _, from_file = load_audio_vae(ref.path)
    latent = jnp.asarray(np.random.default_rng(0).standard_normal((1, 3, 16, 2)), jnp.float32)
    np.testing.assert_array_equal(np.asarray(from_dir["decoder"](latent)), np.asarray(from_file["decoder"](latent)))
    _, vocoder = load_vocoder(str(tmp_path / "converted"))
    np.testing.assert_array_equal(np.asarray(vocoder.mel_stft.mel_basis[...]),
                                  np.asarray(load_vocoder(ref.path)[1].mel_stft.mel_basis[...]))


def test_missing_and_misshaped_tensors_are_named(tmp_path):
    from helpers.checkpoints import read_all, rewrite

    ref = audio_reference(RECIPE)
    key = "audio_vae.decoder.up.1.block.0.conv2.conv.weight"
    missing = rewrite(ref.path, str(tmp_path / "missing.safetensors"), drop=(key,))
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.") + ".*missing"):
        load_audio_vae(missing)
    tensors, _, _ = read_all(ref.path)
    stats = "audio_vae.per_channel_statistics.std-of-means"
    bad = rewrite(ref.path, str(tmp_path / "bad.safetensors"), replace={stats: tensors[stats][:-1].copy()})
    with pytest.raises(CheckpointError, match="std-of-means.*shape"):
        load_audio_vae(bad)
    extra = rewrite(ref.path, str(tmp_path / "extra.safetensors"),
                    add={"audio_vae.encoder.down.9.block.0.conv1.conv.bias": np.zeros(4, np.float32)})
    with pytest.raises(CheckpointError, match=r"down\.9.*not used"):
        load_audio_vae(extra)


def test_statistics_under_the_component_prefix_are_accepted(tmp_path):
    """ltx-core's filters map `audio_vae.<part>.per_channel_statistics.*` to the same buffers as the shared key."""
    from helpers.checkpoints import read_all, rewrite

    ref = audio_reference(RECIPE)
    tensors, _, _ = read_all(ref.path)
    stats = {k: v for k, v in tensors.items() if k.startswith("audio_vae.per_channel_statistics.")}
    moved = {k.replace("audio_vae.", f"audio_vae.{part}.", 1): v
             for k, v in stats.items() for part in ("encoder", "decoder")}
    path = rewrite(ref.path, str(tmp_path / "moved.safetensors"), drop=tuple(stats), add=moved)
    _, theirs = load_audio_vae(path)
    _, ours = load_audio_vae(ref.path)
    for part in ("encoder", "decoder"):
        np.testing.assert_array_equal(np.asarray(theirs[part].per_channel_statistics.std_of_means[...]),
                                      np.asarray(ours[part].per_channel_statistics.std_of_means[...]))


def test_a_checkpoint_without_audio_entries_is_refused(checkpoint):
    with pytest.raises(AudioConfigError, match="no 'audio_vae' entry"):
        load_audio_vae(checkpoint())
    with pytest.raises(AudioConfigError, match="no 'vocoder' entry"):
        load_vocoder(checkpoint())


@pytest.mark.parametrize("change,key", [
    ({"norm_type": "group"}, "norm_type"),
    ({"causality_axis": "width"}, "causality_axis"),
    ({"mid_block_add_attention": True}, "mid_block_add_attention"),
    ({"attn_resolutions": [64]}, "attn_resolutions"),
    ({"ch_mult": "124"}, "ch_mult"),
])
def test_unsupported_config_is_refused_naming_the_key(change, key):
    config = AudioSpec(vocoder="none").config()
    config["audio_vae"]["model"]["params"]["ddconfig"].update(change)
    with pytest.raises(AudioConfigError, match=key):
        audio_vae_config(config)
    dd = AudioSpec(vocoder="none").config()
    del dd["audio_vae"]["model"]["params"]["ddconfig"]["mid_block_add_attention"]  # ltx-core's default is True
    with pytest.raises(AudioConfigError, match="mid_block_add_attention"):
        audio_vae_config(dd)


def test_real_config_values_and_defaults():
    real = {"audio_vae": {"model": {"params": {"ddconfig": {
        "double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "downsample_time": False,
        "in_channels": 2, "out_ch": 2, "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [],
        "dropout": 0.0, "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"},
        "sampling_rate": 16000}},
        "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
                          "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000}}}}
    cfg = audio_vae_config(real)
    assert (cfg.latent_mel_bins, cfg.latent_channels, cfg.decoded_frames(26)) == (16, 128, 101)
