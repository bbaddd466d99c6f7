"""The codecs and text encoder a story model was trained with, chosen by its checkpoint's `meta["codec"]`.

"toy_world": the toy codecs and hash text encoder (`unityshots_jax/toy_world/`). LTX-2.3's video / audio VAEs
and Gemma text encoder are not ported yet: a model trained on them cannot be decoded here, and says so.
"""

from __future__ import annotations

import dataclasses

from unityshots_jax.story.story_config import StoryConfig


class CodecUnavailable(ValueError):
    """The checkpoint needs media codecs this installation does not have."""


@dataclasses.dataclass(frozen=True)
class StoryCodecs:
    """video: encode `[T, H, W, 3]` ↔ `[F, h, w, C]`; audio: encode `[N]` ↔ `[Fa, Ca]`; text: caption →
    contexts; frame_size: (H, W) px of the model's frames."""

    name: str
    video: object
    audio: object
    text: object
    frame_size: tuple[int, int]


def codecs_for(meta: dict, story: StoryConfig, video_context_dim: int, audio_context_dim: int) -> StoryCodecs:
    name = meta.get("codec", "ltx")
    if name == "toy_world":
        from unityshots_jax.toy_world.codec import ToyAudioCodec, ToyVideoCodec
        from unityshots_jax.toy_world.text_encoder import HashTextEncoder

        video = ToyVideoCodec()
        if (story.fps, story.temporal_scale, story.spatial_scale, story.latent_channels) != (
                video.fps, video.temporal_scale, video.spatial_scale, video.latent_channels):
            raise CodecUnavailable("checkpoint: its story config does not match the toy video codec's rates and channels")
        size = (story.height * video.spatial_scale, story.width * video.spatial_scale)
        return StoryCodecs(name, video, ToyAudioCodec(), HashTextEncoder(story.text_tokens, video_context_dim, audio_context_dim), size)
    raise CodecUnavailable(
        f"checkpoint: trained on {name!r} media; decoding needs the LTX-2.3 video/audio VAEs and text encoder, which "
        "are not ported yet (only toy-world models generate end to end)"
    )
