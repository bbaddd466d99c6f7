"""The codec interface (`unityshots_jax/codecs/base.py`): every registered bundle implements the protocols and
round-trips shapes; the registry refuses unknown names and double registrations; a story model's bundle is
checked against its story config (`unityshots_jax/story/story_codecs.py`)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers.ltx23_stack import build_ltx23_stack
from unityshots_jax.codecs.base import (
    AudioCodec, CodecBundle, CodecRequest, CodecUnavailable, TextEncoder, VideoCodec, build_codecs, codec_name,
    register_codecs, registered_codecs,
)  # fmt: skip
from unityshots_jax.story.story_codecs import audio_hop, story_codecs
from unityshots_jax.story.story_config import StoryConfig

# One buildable request per registered bundle: a new bundle fails `test_every_registered_codec_has_a_request`
# until its request (tiny weights where it needs them) is added here.
REQUESTS = {
    "toy_world": CodecRequest(latent_grid=(3, 5, 7, 48), video_context_dim=24, audio_context_dim=12, text_tokens=9),
}

TOY_STORY = StoryConfig(
    video_frames=4, height=6, width=6, latent_channels=48, audio_frames=40, audio_channels=16, text_tokens=32,
    ltm_frames=1, stm_frames=2, frame_limit=32, ref_image_frames=1, ref_audio_frames=20, fps=8.0, temporal_scale=4,
    spatial_scale=4, audio_hop_seconds=0.0125, audio_downsample=4,
)  # fmt: skip


BUILT_REQUESTS = ("ltx23",)  # requests that need tiny weights written first (`_request`)


def _request(name: str, tmp_path_factory) -> CodecRequest:
    if name == "ltx23":
        return build_ltx23_stack(str(tmp_path_factory.mktemp("ltx23_stack")))[3]
    return REQUESTS[name]


def test_every_registered_codec_has_a_request():
    assert {"toy_world", "ltx23"} <= set(registered_codecs())
    assert set(registered_codecs()) <= set(REQUESTS) | set(BUILT_REQUESTS), "add a request for the new bundle"


@pytest.mark.parametrize("name", sorted(set(REQUESTS) | set(BUILT_REQUESTS)))
def test_registered_codec_implements_the_protocols_and_round_trips_shapes(name, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("UNITYSHOTS_TEXT_CACHE", "")
    request = _request(name, tmp_path_factory)
    bundle = build_codecs(name, request)
    assert isinstance(bundle, CodecBundle) and bundle.name == name
    assert isinstance(bundle.video, VideoCodec) and isinstance(bundle.audio, AudioCodec)
    assert isinstance(bundle.text, TextEncoder)
    f, h, w, c = request.latent_grid
    height, width = bundle.frame_size
    assert (height, width) == (h * bundle.video.spatial_scale, w * bundle.video.spatial_scale)
    rng = np.random.default_rng(0)

    t = bundle.video.frame_count(f)
    assert bundle.video.latent_shape(t, height, width) == (f, h, w, c) == (f, h, w, bundle.video.latent_channels)
    latents = bundle.video.encode(rng.uniform(0.0, 1.0, (t, height, width, 3)).astype(np.float32))
    assert latents.shape == (f, h, w, c) and latents.dtype == np.float32
    frames = bundle.video.decode(latents)
    assert frames.shape == (t, height, width, 3) and frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0

    audio = bundle.audio
    samples = 3 * audio_hop(bundle)
    fa, ca = audio.latent_shape(samples)
    assert ca == audio.latent_channels and fa >= 3
    wave = rng.uniform(-0.5, 0.5, (samples, audio.channels)).astype(np.float32)
    z = audio.encode(wave)
    assert z.shape == (fa, ca) and z.dtype == np.float32
    out = audio.decode(z)
    assert out.shape == (audio.decoded_samples(fa), audio.channels) and out.dtype == np.float32
    assert abs(out.shape[0] / audio.output_sample_rate - fa / audio.latent_rate) < 1.0 / audio.latent_rate

    text = bundle.text.encode(["a caption", "a", "another, longer caption with more words"])
    s = request.text_tokens
    assert text.video.shape == (3, s, request.video_context_dim) and text.audio.shape == (3, s, request.audio_context_dim)
    assert text.mask.shape == (3, s) and text.mask.dtype == np.int32
    assert (bundle.text.tokens, bundle.text.video_dim, bundle.text.audio_dim) == (s, request.video_context_dim,
                                                                                  request.audio_context_dim)
    assert bundle.text.truncated(" ".join(["word"] * (s + 1))) and not bundle.text.truncated("word")


def test_registry_refuses_unknown_names_and_second_factories():
    with pytest.raises(CodecUnavailable, match="unknown codec 'ltx'.*VAE"):
        build_codecs("ltx", REQUESTS["toy_world"])
    with pytest.raises(ValueError, match="already registered"):
        register_codecs("toy_world", lambda request: None)


def test_registry_refuses_a_bundle_that_breaks_the_protocol():
    good = build_codecs("toy_world", REQUESTS["toy_world"])
    register_codecs("test_broken", lambda request: dataclasses.replace(good, name="test_broken", audio=object()))
    with pytest.raises(TypeError, match="audio does not implement AudioCodec"):
        build_codecs("test_broken", REQUESTS["toy_world"])


def test_codec_name_is_explicit():
    assert codec_name({"codec": "toy_world"}, "meta") == "toy_world"
    with pytest.raises(CodecUnavailable, match="model.safetensors: metadata: no 'codec' entry"):
        codec_name({"caption_dropout": 0.1}, "model.safetensors: metadata")


def test_story_codecs_checks_the_story_config():
    bundle = story_codecs("toy_world", TOY_STORY, 64, 32)
    assert bundle.frame_size == (24, 24) and bundle.text.tokens == 32 and audio_hop(bundle) == 800
    for field, value in (("fps", 24.0), ("temporal_scale", 8), ("audio_channels", 8), ("audio_downsample", 2)):
        with pytest.raises(CodecUnavailable, match=field):
            story_codecs("toy_world", dataclasses.replace(TOY_STORY, **{field: value}), 64, 32)
    with pytest.raises(CodecUnavailable, match="channels"):
        story_codecs("toy_world", dataclasses.replace(TOY_STORY, latent_channels=32), 64, 32)
