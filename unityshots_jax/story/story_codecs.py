"""The codec bundle of a story model: built through the registry (`unityshots_jax.codecs.base`) from the story
configuration and the transformer's context widths, and checked against the configuration's media rates.

Training-record writers and generation both call `story_codecs`, so a model is trained and sampled in one latent
space, and a model whose configuration does not fit its codec is refused before any compute.
"""

from __future__ import annotations

import math

from unityshots_jax.codecs.base import CodecBundle, CodecRequest, CodecUnavailable, build_codecs
from unityshots_jax.story.story_config import StoryConfig


def codec_request(story: StoryConfig, video_context_dim: int, audio_context_dim: int, *, weights: str | None = None,
                  text_encoder_dir: str | None = None, dtype: str = "float32") -> CodecRequest:
    """What `build_codecs` needs for a model of story config `story` and these context widths."""
    grid = (story.video_frames, story.height, story.width, story.latent_channels)
    return CodecRequest(grid, int(video_context_dim), int(audio_context_dim), story.text_tokens, weights,
                        text_encoder_dir, dtype)


def check_codecs_fit(bundle: CodecBundle, story: StoryConfig) -> None:
    """CodecUnavailable naming the first story-config field that disagrees with the bundle's codecs."""
    video, audio = bundle.video, bundle.audio
    audio_rate = 1.0 / (story.audio_hop_seconds * story.audio_downsample)
    checks = (
        ("fps", story.fps, video.fps), ("temporal_scale", story.temporal_scale, video.temporal_scale),
        ("spatial_scale", story.spatial_scale, video.spatial_scale),
        ("latent_channels", story.latent_channels, video.latent_channels),
        ("audio_channels", story.audio_channels, audio.latent_channels),
        ("audio_hop_seconds · audio_downsample (audio latents per second)", audio_rate, audio.latent_rate),
    )
    for field, ours, theirs in checks:
        if not math.isclose(float(ours), float(theirs), rel_tol=1e-9):
            raise CodecUnavailable(f"story.{field}: {ours:g} in the model's config, codec {bundle.name!r} has {theirs:g}")


def story_codecs(name: str, story: StoryConfig, video_context_dim: int, audio_context_dim: int, **request) -> CodecBundle:
    """The bundle registered as `name` for this model, checked against its story config (`check_codecs_fit`).

    request: `codec_request`'s keyword arguments (weights, text_encoder_dir, dtype).
    """
    bundle = build_codecs(name, codec_request(story, video_context_dim, audio_context_dim, **request))
    check_codecs_fit(bundle, story)
    return bundle


def audio_hop(bundle: CodecBundle) -> int:
    """Input samples per audio latent frame (`sample_rate / latent_rate`, a whole number for every codec)."""
    hop = bundle.audio.sample_rate / bundle.audio.latent_rate
    if abs(hop - round(hop)) > 1e-9:
        raise CodecUnavailable(f"codec {bundle.name!r}: {hop:g} samples per audio latent frame is not whole")
    return int(round(hop))
