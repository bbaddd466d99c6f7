"""The LTX-2.3 `AudioCodec` adapter: protocol, shapes, parity with ltx-core's encode_audio / decode_audio in fp32,
and bf16 within 4× the reference's own bf16-vs-float64 gap."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.audio import AudioSpec, audio_reference
from unityshots_jax.codecs.base import AudioCodec
from unityshots_jax.codecs.ltx23_audio import LTX23AudioCodec
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.vae.audio.mel import AudioInputError

SPEC = AudioSpec()


@pytest.fixture(scope="module")
def ref():
    return audio_reference(SPEC)


@pytest.fixture(scope="module")
def codec(ref):
    return LTX23AudioCodec(ref.path)


def _tokens(x):
    """ltx-core latent `[1, C, F, M]` → tokens `[F, C·M]`."""
    return x[0].transpose(1, 0, 2).reshape(x.shape[2], -1)


def test_codec_protocol_and_shapes(codec):
    assert isinstance(codec, AudioCodec)
    assert (codec.sample_rate, codec.output_sample_rate, codec.channels) == (48000, 48000, 2)
    assert codec.latent_rate == 25.0 and codec.latent_channels == 32
    for samples in (4800, 7777):
        wave = (0.2 * np.random.default_rng(samples).standard_normal((samples, 2))).astype(np.float32)
        assert codec.encode(wave).shape == codec.latent_shape(samples)
    np.testing.assert_array_equal(codec.encode(wave[:, 0]), codec.encode(wave[:, :1].repeat(2, 1)))
    assert codec.decode(np.zeros((2, 32), np.float32)).shape == (5 * 480, 2)
    with pytest.raises(AudioInputError, match="audio latents"):
        codec.decode(np.zeros((2, 31), np.float32))


def test_codec_encode_and_decode_match_reference(ref, codec):
    from ltx_core.model.audio_vae import decode_audio, encode_audio
    from ltx_core.types import Audio

    from unityshots_jax.reference.tiny_audio import audio_processor

    wave = (0.2 * np.random.default_rng(1).standard_normal((9600, 2))).astype(np.float32)

    def encode(m, x):
        processor = audio_processor(m["encoder"]).to(x.dtype)
        return encode_audio(Audio(x.T[None].contiguous(), 48000), m["encoder"], processor)

    ref32, ref64 = ref.both(encode, wave)
    assert_parity("codec encode", codec.encode(wave), _tokens(ref32), _tokens(ref64))
    latent = np.random.default_rng(2).standard_normal((1, 2, 3, 16)).astype(np.float32)
    ref32, ref64 = ref.both(lambda m, x: decode_audio(x, m["decoder"], m["vocoder"]).waveform, latent)
    assert_parity("codec decode", codec.decode(_tokens(latent)), ref32.T, ref64.T)


def test_bf16_within_the_reference_bf16_gap(ref):
    """ours with a bf16 audio VAE vs the truth (float64) ≤ 4 × the reference's own error run the same way (bf16
    VAE; vocoder in float32, as the codec runs it), or 2e-5 of scale."""
    import jax.numpy as jnp
    import torch
    from ltx_core.model.audio_vae import encode_audio
    from ltx_core.types import Audio

    from unityshots_jax.reference.tiny_audio import audio_processor, load_official

    ours = LTX23AudioCodec(ref.path, dtype="bfloat16")
    ref16 = load_official(ref.path, torch.bfloat16)
    latent = np.random.default_rng(3).standard_normal((1, 2, 3, 16)).astype(np.float32)
    wave = (0.2 * np.random.default_rng(4).standard_normal((9600, 2))).astype(np.float32)
    with torch.no_grad():
        mel16 = ref16["decoder"](torch.from_numpy(latent).bfloat16()).float()
        wave16 = ref.m32["vocoder"](mel16)[0].numpy()
        enc16 = encode_audio(Audio(torch.from_numpy(wave.T[None].copy()), 48000), ref16["encoder"],
                             audio_processor(ref16["encoder"])).float().numpy()
    _, mel64 = ref.both(lambda m, x: m["decoder"](x), latent)
    _, wave64 = ref.both(lambda m, x: m["vocoder"](m["decoder"](x))[0], latent)
    _, enc64 = ref.both(lambda m, x: encode_audio(Audio(x.T[None].contiguous(), 48000), m["encoder"],
                                                  audio_processor(m["encoder"]).to(x.dtype)), wave)
    from unityshots_jax.vae.audio.pipeline import decode_latent

    x = jnp.asarray(latent.transpose(0, 2, 3, 1), jnp.bfloat16)
    ours_mel = np.asarray(decode_latent(ours.decoder, x).astype(jnp.float32)).transpose(0, 3, 1, 2)
    print(assert_parity("bf16 audio decoder", ours_mel, mel16.numpy(), mel64))
    print(assert_parity("bf16 decoder + fp32 vocoder, 48 kHz", ours.decode(_tokens(latent)), wave16.T, wave64.T))
    print(assert_parity("bf16 encode", ours.encode(wave), _tokens(enc16), _tokens(enc64)))


def test_verify_audio_passes_on_the_file_and_catches_a_changed_tensor(ref, tmp_path):
    from helpers.checkpoints import read_all, rewrite
    from unityshots_jax.reference.verify_audio import verify_audio

    rows = verify_audio(ref.path)
    assert [r.name for r in rows] == ["mel front end", "audio encoder", "audio decoder", "vocoder"]
    assert all(r.ok for r in rows), "\n".join(map(str, rows))
    tensors, _, _ = read_all(ref.path)
    key = "audio_vae.decoder.conv_out.conv.bias"
    changed = rewrite(ref.path, str(tmp_path / "changed.safetensors"), replace={key: tensors[key] + 0.01})
    rows = {r.name: r.ok for r in verify_audio(ref.path, changed)}
    assert rows == {"mel front end": True, "audio encoder": True, "audio decoder": False, "vocoder": True}
