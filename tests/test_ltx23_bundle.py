"""The `ltx23` codec bundle end to end on one tiny official-layout LTX-2.3 file (transformer, video VAE, audio VAE,
vocoder + BWE, text connectors) and a tiny Gemma-3 directory: built through the registry, a 3-shot story decoded
to a playable mp4 with 48 kHz stereo AAC, first frame and voice clip encoded, the story's captions encoded in one
call, the combined file read as ltx-core reads it, and mismatched or missing components refused by name."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import safetensors
import safetensors.torch

from helpers.ltx23_stack import AUDIO_C, GRID, TOKENS, VIDEO_C, build_ltx23_stack
from unityshots_jax.codecs.base import (
    AudioCodec, CodecUnavailable, TextEncoder, VideoCodec, build_codecs, registered_codecs,
)  # fmt: skip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORY = os.path.join(ROOT, "configs", "stories", "meadow_three_shots.yaml")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """(checkpoint path, gemma dir, upsampler path, the request for them)."""
    return build_ltx23_stack(str(tmp_path_factory.mktemp("ltx23_stack")))


@pytest.fixture(scope="module")
def bundle(stack):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        return build_codecs("ltx23", stack[3])


def test_bundle_components_satisfy_the_protocols(bundle):
    assert "ltx23" in registered_codecs()
    assert bundle.name == "ltx23" and bundle.frame_size == (64, 96)
    assert isinstance(bundle.video, VideoCodec) and isinstance(bundle.audio, AudioCodec)
    assert isinstance(bundle.text, TextEncoder)
    assert (bundle.video.latent_channels, bundle.video.fps, bundle.video.temporal_scale) == (VIDEO_C, 24.0, 8)
    assert (bundle.audio.latent_channels, bundle.audio.output_sample_rate, bundle.audio.channels) == (AUDIO_C, 48000, 2)
    assert bundle.audio.latent_rate == 25.0 and bundle.audio.has_bwe
    assert (bundle.text.tokens, bundle.text.video_dim, bundle.text.audio_dim) == (TOKENS, 32, 16)
    assert bundle.text.truncated(" ".join(["pip"] * TOKENS)) and not bundle.text.truncated("pip jumps")
    latents = np.random.default_rng(0).standard_normal((2, 2, 3, VIDEO_C)).astype(np.float32)
    assert bundle.video.upsample(latents).shape == (2, 4, 6, VIDEO_C)


def _shot_media(bundle, latent_frames: int, audio_frames: int, seed: int):
    """One shot: random latents → frames `[T, 64, 96, 3]` and its audio trimmed to the shot, `[T·2000, 2]`."""
    rng = np.random.default_rng(seed)
    frames = bundle.video.decode(rng.standard_normal((latent_frames, *GRID[1:])).astype(np.float32))
    samples = frames.shape[0] * 48000 // 24
    wave = bundle.audio.decode((0.5 * rng.standard_normal((audio_frames, AUDIO_C))).astype(np.float32))
    assert wave.shape == (bundle.audio.decoded_samples(audio_frames), 2) and wave.shape[0] >= samples
    return frames, wave[:samples]


def test_covering_latent_frames(bundle):
    for samples in (1, 480, 1441, 18000, 34000, 240000):
        fa = bundle.audio.covering_latent_frames(samples)
        assert bundle.audio.decoded_samples(fa) >= samples
        assert fa == 1 or bundle.audio.decoded_samples(fa - 1) < samples
    assert bundle.audio.covering_latent_frames(17 * 2000) == 19  # the story test decodes 19 frames: one compile
    assert bundle.audio.decode(np.zeros((19, AUDIO_C), np.float32)).shape == (bundle.audio.decoded_samples(19), 2)


def test_three_shot_story_to_mp4_with_48khz_stereo(bundle, tmp_path):
    from unityshots_jax.media.mp4_writer import ShotSegment, probe_mp4, sidecar_path, write_story_mp4
    from unityshots_jax.prompt.story_prompt import compose_shot_texts, load_story_prompt

    prompt = load_story_prompt(STORY)
    texts = compose_shot_texts(prompt)
    audio_frames = bundle.audio.covering_latent_frames(17 * 2000)  # one length for all shots: one compile
    shots = [_shot_media(bundle, f, audio_frames, seed) for seed, f in enumerate((2, 3, 2))]
    counts = [len(f) for f, _ in shots]
    assert counts == [9, 17, 9] and all(f.shape[1:] == (64, 96, 3) for f, _ in shots)
    assert all(0.0 <= f.min() and f.max() <= 1.0 for f, _ in shots)
    starts = np.cumsum([0] + counts[:-1])
    segments = [ShotSegment(i, s / 24.0, n / 24.0, texts[i]) for i, (s, n) in enumerate(zip(starts, counts))]
    video = np.concatenate([np.round(f * 255).astype(np.uint8) for f, _ in shots])
    wave = np.concatenate([w for _, w in shots])
    out = write_story_mp4(tmp_path / "story.mp4", video, 24.0, wave, 48000, segments, scale=1)

    info = probe_mp4(out)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.sample_rate, info.audio_channels) == (48000, 2)
    assert (info.video_frames, info.height, info.width, info.fps) == (35, 64, 96, 24.0)
    assert abs(info.video_duration_s - 35 / 24) < 1e-3  # the mp4 time base (1/1024 s here) rounds
    assert abs(info.audio_duration_s - 35 / 24) <= 1024 / 48000
    if info.chapters:
        assert [(round(a, 3), round(b, 3)) for a, b, _ in info.chapters] == [
            (round(s.start_s, 3), round(s.start_s + s.duration_s, 3)) for s in segments]
    side = json.loads(sidecar_path(out).read_text())
    assert (side["sample_rate"], side["audio_channels"]) == (48000, 2)
    assert [s["duration_s"] for s in side["shots"]] == [n / 24.0 for n in counts]
    assert [s["caption"] for s in side["shots"]] == texts

    # encode: a rendered first frame (one latent frame) and a voice clip (shot 2's audio)
    first = shots[0][0][:1]
    assert bundle.video.encode(first).shape == bundle.video.latent_shape(1, 64, 96) == (1, 2, 3, VIDEO_C)
    voice = shots[1][1]
    z = bundle.audio.encode(voice)
    assert z.shape == bundle.audio.latent_shape(len(voice)) and z.shape[1] == AUDIO_C
    assert abs(z.shape[0] - len(voice) / 1920) <= 1 and np.all(np.isfinite(z))  # 25 latent frames per second


def test_story_captions_in_one_call_match_ltx_core(bundle, stack):
    import torch

    from unityshots_jax.parity_criterion import assert_parity
    from unityshots_jax.prompt.story_prompt import compose_shot_texts, load_story_prompt
    from unityshots_jax.reference import tiny_text

    texts = compose_shot_texts(load_story_prompt(STORY))
    out = bundle.text.encode(texts)
    assert out.video.shape == (3, TOKENS, 32) and out.audio.shape == (3, TOKENS, 16) and out.mask.shape == (3, TOKENS)
    # the connectors as ltx-core reads them from the combined file
    path, gemma = stack[0], stack[1]
    processor = _reference_processor(path, gemma)
    torch.set_num_threads(1)
    ref32 = tiny_text.ltx_text_path(gemma, processor, texts, TOKENS)
    ref64 = tiny_text.ltx_text_path(gemma, processor, texts, TOKENS, dtype="float64")
    assert_parity("story captions: video", out.video, ref32[0], ref64[0])
    assert_parity("story captions: audio", out.audio, ref32[1], ref64[1])


def _reference_processor(path: str, gemma: str):
    """ltx-core's EmbeddingsProcessor filled from the combined file's text tensors."""
    import torch
    from transformers import AutoConfig

    from unityshots_jax.reference import tiny_text

    with safetensors.safe_open(path, "pt") as f:
        transformer = json.loads(f.metadata()["config"])["transformer"]
    gcfg = AutoConfig.from_pretrained(gemma)
    proc = tiny_text.build_processor(transformer, gcfg.hidden_size, gcfg.num_hidden_layers + 1, seed=99)
    file = safetensors.torch.load_file(path)
    state = {}
    for key in proc.state_dict():
        if key.startswith("feature_extractor."):
            name = "text_embedding_projection." + key[len("feature_extractor."):]
        else:
            stream, rest = key.split("_connector.", 1)
            name = f"model.diffusion_model.{stream}_embeddings_connector.{rest}"
        state[key] = file[name]
    proc.load_state_dict(state)
    return proc.to(torch.float32).eval()


def test_video_decode_of_the_combined_file_matches_ltx_core(bundle, stack):
    from unityshots_jax.parity_criterion import assert_parity
    from unityshots_jax.reference.tiny_media import run_reference

    latents = np.random.default_rng(5).standard_normal((2, *GRID[1:])).astype(np.float32)
    ref = run_reference(stack[0], "decoder", latents.transpose(3, 0, 1, 2)[None])
    to_frames = lambda y: np.clip((y[0].transpose(1, 2, 3, 0) + 1.0) / 2.0, 0.0, 1.0)  # noqa: E731
    assert_parity("combined file: decode", bundle.video.decode(latents), to_frames(ref["float32"]),
                  to_frames(ref["float64"]))


def test_converted_directory_gives_the_same_bundle(bundle, stack, tmp_path):
    """`unityshots convert`'s directory holds the media and connector tensors verbatim: same parameters, same
    contexts."""
    import jax
    from flax import nnx

    from unityshots_jax.checkpoint.ltx_convert import convert

    converted = str(tmp_path / "converted")
    convert(stack[0], converted, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        other = build_codecs("ltx23", dataclasses.replace(stack[3], weights=converted))
    for a, b in ((bundle.video.decoder, other.video.decoder), (bundle.video.encoder, other.video.encoder),
                 (bundle.video.upsampler, other.video.upsampler), (bundle.audio.encoder, other.audio.encoder),
                 (bundle.audio.decoder, other.audio.decoder), (bundle.audio.vocoder, other.audio.vocoder)):
        la, lb = jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b))
        assert len(la) == len(lb) > 0 and all(np.array_equal(x, y) for x, y in zip(la, lb))
    caption = ["pip walks right"]
    np.testing.assert_array_equal(other.text.encode(caption).video, bundle.text.encode(caption).video)


def _rewrite(src: str, dst: str, edit) -> str:
    """A copy of `src` whose metadata config is `edit(config)` (tensors unchanged)."""
    with safetensors.safe_open(src, "pt") as f:
        meta = dict(f.metadata())
    config = json.loads(meta["config"])
    edit(config)
    meta["config"] = json.dumps(config)
    safetensors.torch.save_file(safetensors.torch.load_file(src), dst, metadata=meta)
    return dst


def test_missing_paths_are_asked_for_by_name(stack, tmp_path):
    request = stack[3]
    for field, message in (("weights", "weights is not set"), ("text_encoder_dir", "text_encoder_dir is not set")):
        with pytest.raises(CodecUnavailable, match=f"ltx23: {message}"):
            build_codecs("ltx23", dataclasses.replace(request, **{field: None}))
    missing = str(tmp_path / "nowhere")
    for field in ("weights", "text_encoder_dir"):
        with pytest.raises(CodecUnavailable, match=f"{field}: .*nowhere does not exist"):
            build_codecs("ltx23", dataclasses.replace(request, **{field: missing}))
    with pytest.raises(CodecUnavailable, match="upsampler: .*nowhere is not a file"):
        build_codecs("ltx23", dataclasses.replace(request, upsampler=missing))


def test_mismatched_components_are_refused_naming_them(stack, tmp_path):
    from unityshots_jax.reference.tiny_media import write_tiny_upsampler

    path, _, _, request = stack
    cases = [
        (dataclasses.replace(request, latent_grid=(3, 2, 3, 8)),
         "video VAE: latent channels is 16, the model's latent grid's is 8"),
        (dataclasses.replace(request, video_context_dim=48),
         "transformer: cross_attention_dim is 32, the request's video_context_dim is 48"),
        (dataclasses.replace(request, weights=_rewrite(path, str(tmp_path / "a.safetensors"),
                                                       lambda c: c["transformer"].update(audio_in_channels=64))),
         r"transformer: audio_in_channels is 64, the audio VAE's z_channels × latent mel bins \(2 × 16\) is 32"),
        (dataclasses.replace(request, weights=_rewrite(path, str(tmp_path / "v.safetensors"),
                                                       lambda c: c["transformer"].update(in_channels=8))),
         "transformer: video in_channels is 8, the video VAE's latent channels is 16"),
        (dataclasses.replace(request, weights=_rewrite(path, str(tmp_path / "n.safetensors"),
                                                       lambda c: c.pop("vocoder"))),
         "n.safetensors holds no vocoder"),
    ]
    upsampler = str(tmp_path / "up8.safetensors")
    write_tiny_upsampler(upsampler, {"in_channels": 8, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3})
    cases.append((dataclasses.replace(request, upsampler=upsampler),
                  "upsampler: in_channels of .*up8.safetensors is 8, the video VAE's latent channels is 16"))
    for bad, message in cases:
        with pytest.raises(CodecUnavailable, match=f"ltx23: (.*/)?{message}"):
            build_codecs("ltx23", bad)
