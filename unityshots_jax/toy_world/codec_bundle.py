"""The toy world's codec bundle, registered as "toy_world": `ToyVideoCodec`, `ToyAudioCodec` and the hash text
encoder sized to the model's context widths (`CodecRequest.video_context_dim` / `audio_context_dim` /
`text_tokens`). The toy codecs have no weights: `request.weights` and `request.text_encoder_dir` must be unset.
"""

from __future__ import annotations

from unityshots_jax.codecs.base import CodecBundle, CodecRequest, CodecUnavailable, register_codecs
from unityshots_jax.toy_world.codec import ToyAudioCodec, ToyVideoCodec
from unityshots_jax.toy_world.text_encoder import HashTextEncoder

NAME = "toy_world"


def toy_world_codecs(request: CodecRequest) -> CodecBundle:
    """The bundle for a model whose latent grid is `request.latent_grid` `(F, h, w, 48)`; frames are 4h × 4w px."""
    video = ToyVideoCodec()
    _, h, w, channels = request.latent_grid
    if channels != video.latent_channels:
        raise CodecUnavailable(f"codec {NAME!r}: the model's video latents have {channels} channels, the toy video "
                               f"codec makes {video.latent_channels}")
    if request.weights is not None or request.text_encoder_dir is not None:
        raise CodecUnavailable(f"codec {NAME!r}: has no weights; got weights={request.weights!r}, "
                               f"text_encoder_dir={request.text_encoder_dir!r}")
    text = HashTextEncoder(int(request.text_tokens), int(request.video_context_dim), int(request.audio_context_dim))
    size = (h * video.spatial_scale, w * video.spatial_scale)
    return CodecBundle(NAME, video, ToyAudioCodec(), text, size)


register_codecs(NAME, toy_world_codecs)
