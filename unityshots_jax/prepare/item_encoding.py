"""Stage 2 of preparing an item: a `LoadedItem` through the codecs into a `StoryRecord`.

Each shot's frames go through the video codec and its audio through the audio codec (`encode_at`, at the rate the
clip was decoded at), all the shots' texts through the text encoder in one call; the portrait is encoded as one
frame (a causal video codec) or held for a latent frame's worth of frames (others), the voice is cut to the
model's reference length. The record stores latents, contexts and references in the options' dtype.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.data.story_record import StoryRecord
from unityshots_jax.prepare.item_types import LoadedItem
from unityshots_jax.story.shot_sequence import I2V, R2V, T2V
from unityshots_jax.story.story_config import StoryConfig

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def _stack(latents: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-shot latents `[F_i, …]` → (zero-padded `[k, F_max, …]` float32, lengths int32 `[k]`)."""
    f_max = max(len(x) for x in latents)
    out = np.zeros((len(latents), f_max, *latents[0].shape[1:]), np.float32)
    for i, x in enumerate(latents):
        out[i, : len(x)] = x
    return out, np.asarray([len(x) for x in latents], np.int32)


def encode_audio(codecs: CodecBundle, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """wave float32 `[N, channels]` at `sample_rate` → latents `[Fa, Ca]` (`encode_at` when the codec has it)."""
    encode_at = getattr(codecs.audio, "encode_at", None)
    if encode_at is not None:
        return np.asarray(encode_at(wave, sample_rate), np.float32)
    if sample_rate != codecs.audio.sample_rate:
        raise ValueError(f"audio codec {codecs.name!r} encodes {codecs.audio.sample_rate} Hz only, got {sample_rate}")
    return np.asarray(codecs.audio.encode(wave), np.float32)


def encode_portrait(codecs: CodecBundle, image: np.ndarray, frames: int) -> np.ndarray:
    """image float32 `[H, W, 3]` in [0, 1] → `[frames, h, w, C]` (its first latent frame, held)."""
    video = codecs.video
    try:
        video.latent_shape(1, *image.shape[:2])
        clip = image[None]
    except ValueError:  # a codec without a causal first frame: one latent frame's worth of the image
        clip = np.repeat(image[None], video.temporal_scale, axis=0)
    latent = np.asarray(video.encode(clip), np.float32)[0]
    return np.repeat(latent[None], frames, axis=0)


def encode_voice(codecs: CodecBundle, wave: np.ndarray, sample_rate: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """voice float32 `[N, channels]` → (latents `[frames, Ca]` zero-padded, mask int32 `[frames]`): its first
    min(frames, N / hop) latent frames."""
    hop = sample_rate / codecs.audio.latent_rate
    n = min(int(len(wave) // hop), frames)
    latents = encode_audio(codecs, wave[: round(n * hop)], sample_rate)[:n]
    out = np.zeros((frames, codecs.audio.latent_channels), np.float32)
    out[: len(latents)] = latents
    return out, (np.arange(frames) < len(latents)).astype(np.int32)


def allowed_modes(k: int, has_ref_image: bool, ref_image_shot: int | None) -> np.ndarray:
    """bool `[k, 3]`: T2V and I2V always; R2V with a portrait, except for the shot the portrait was cut from."""
    modes = np.zeros((k, 3), bool)
    modes[:, T2V] = modes[:, I2V] = True
    if has_ref_image:
        modes[:, R2V] = True
        if ref_image_shot is not None:
            modes[ref_image_shot, R2V] = False
    return modes


def encode_item(loaded: LoadedItem, codecs: CodecBundle, cfg: StoryConfig, latent_dtype: str = "float32") -> StoryRecord:
    """The record of `loaded` (see module doc). Audio latents are cut to cfg.audio_frames per shot."""
    dtype = DTYPES[latent_dtype]
    k = len(loaded.frames)
    video, n_frames = _stack([np.asarray(codecs.video.encode(f), np.float32) for f in loaded.frames])
    audio, n_audio = _stack([encode_audio(codecs, w, loaded.sample_rate)[: cfg.audio_frames] for w in loaded.audio])
    text = codecs.text.encode(list(loaded.texts))
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    has_image = loaded.ref_image is not None
    ref_image = (encode_portrait(codecs, loaded.ref_image, cfg.ref_image_frames) if has_image
                 else np.zeros((cfg.ref_image_frames, *frame), np.float32))
    if loaded.ref_voice is not None:
        ref_audio, ref_mask = encode_voice(codecs, loaded.ref_voice, loaded.sample_rate, cfg.ref_audio_frames)
    else:
        ref_audio = np.zeros((cfg.ref_audio_frames, codecs.audio.latent_channels), np.float32)
        ref_mask = np.zeros((cfg.ref_audio_frames,), np.int32)
    return StoryRecord(
        story_id=loaded.item_id,
        video_latents=video.astype(dtype), n_frames=n_frames,
        audio_latents=audio.astype(dtype), n_audio=n_audio,
        video_context=np.asarray(text.video).astype(dtype), audio_context=np.asarray(text.audio).astype(dtype),
        context_mask=np.asarray(text.mask, np.int32),
        cut_type=np.asarray(loaded.cut_type, np.int32),
        allowed_modes=allowed_modes(k, has_image, loaded.ref_image_shot),
        ref_image=ref_image.astype(dtype), has_ref_image=has_image,
        ref_audio=ref_audio.astype(dtype), ref_audio_mask=ref_mask,
        **{name: np.asarray(loaded.signals[name], np.float32) for name in ("s_vis", "s_aud", "s_beat")},
    )
