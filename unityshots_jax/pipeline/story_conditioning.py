"""A story file's conditioning as host arrays for one story (`PreparedStory`), checked against the model.

Every per-shot array has a leading shot axis k; `stack_stories` batches stories of equal k into `StoryInputs`.
Checks name the story field: a duration the model cannot hold (`shots[2].duration`), a reference file of the
wrong kind, too many shots for the model. References: the first character with a reference image gives the
identity reference (used by r2v shots), the first with a reference voice gives the speaker reference.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.prompt.story_prompt import StoryPrompt, StoryPromptError, compose_shot_texts, cut_strengths
from unityshots_jax.story.story_codecs import audio_hop
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_inputs import StoryInputs, make_story_inputs


@dataclasses.dataclass(frozen=True)
class PreparedStory:
    """texts: per shot; video_context `[k, S, Dv]`, audio_context `[k, S, Da]`, context_mask `[k, S]`, modes `[k]`,
    cut_strength `[k]`, n_frames `[k]` latent frames, n_audio `[k]` audio latent frames, first_frame
    `[k, h, w, C]`, ref_image `[R, h, w, C]` or None, ref_audio `[Fr, Ca]` + ref_audio_mask `[Fr]` or None;
    durations `[k]` seconds; truncated: shots whose text was longer than the encoder keeps."""

    texts: tuple[str, ...]
    video_context: np.ndarray
    audio_context: np.ndarray
    context_mask: np.ndarray
    modes: np.ndarray
    cut_strength: np.ndarray
    n_frames: np.ndarray
    n_audio: np.ndarray
    first_frame: np.ndarray
    ref_image: np.ndarray | None
    ref_audio: np.ndarray | None
    ref_audio_mask: np.ndarray | None
    durations: tuple[float, ...]
    truncated: tuple[int, ...]

    @property
    def num_shots(self) -> int:
        return len(self.texts)


def _error(prompt: StoryPrompt, field: str, reason: str) -> StoryPromptError:
    return StoryPromptError(str(prompt.source or "<story>"), field, reason)


def shot_lengths(prompt: StoryPrompt, cfg: StoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames `[k]`, n_audio `[k]`) latent frames of every shot's duration, or StoryPromptError naming the
    shot whose duration is not a whole number of latent frames of both streams or is outside the model's range."""
    video_rate = cfg.fps / cfg.temporal_scale
    audio_rate = 1.0 / (cfg.audio_hop_seconds * cfg.audio_downsample)
    step = 1.0 / math.gcd(int(round(video_rate * 1000)), int(round(audio_rate * 1000))) * 1000
    lo, hi = cfg.stm_frames / video_rate, min(cfg.video_frames / video_rate, cfg.audio_frames / audio_rate)
    nf, na = [], []
    for i, shot in enumerate(prompt.shots):
        f, a = shot.duration * video_rate, shot.duration * audio_rate
        if abs(f - round(f)) > 1e-6 or abs(a - round(a)) > 1e-6 or not lo - 1e-9 <= shot.duration <= hi + 1e-9:
            raise _error(prompt, f"shots[{i}].duration", f"{shot.duration:g} s: this model makes shots of {lo:g} to "
                         f"{hi:g} s in steps of {step:g} s")
        nf.append(int(round(f)))
        na.append(int(round(a)))
    return np.asarray(nf, np.int32), np.asarray(na, np.int32)


def _image_latent(path, codecs: CodecBundle) -> np.ndarray:
    """An image file → one latent frame `[h, w, C]` (the frame held for a whole latent frame)."""
    from unityshots_jax.media.media_files import load_image

    frame = load_image(path, size=codecs.frame_size)
    return codecs.video.encode(np.repeat(frame[None], codecs.video.temporal_scale, 0))[0]


def prepare_story(prompt: StoryPrompt, cfg: StoryConfig, codecs: CodecBundle, *, cut_strength: float | None = None) -> PreparedStory:
    """The conditioning of `prompt` for a model of story config `cfg` (see `PreparedStory`)."""
    k = len(prompt.shots)
    if k > cfg.max_shots:
        raise _error(prompt, "shots", f"{k} shots; this model generates at most {cfg.max_shots}")
    n_frames, n_audio = shot_lengths(prompt, cfg)
    texts = compose_shot_texts(prompt)
    contexts = codecs.text.encode(texts)
    frame_shape = (cfg.height, cfg.width, cfg.latent_channels)
    first = np.zeros((k, *frame_shape), np.float32)
    for i, shot in enumerate(prompt.shots):
        if shot.first_frame is not None:
            first[i] = _image_latent(shot.first_frame, codecs)
    ref_image = ref_audio = ref_mask = None
    with_image = [c for c in prompt.characters if c.reference_image is not None]
    if with_image:
        ref_image = np.repeat(_image_latent(with_image[0].reference_image, codecs)[None], cfg.ref_image_frames, 0)
    with_voice = [c for c in prompt.characters if c.reference_voice is not None]
    if with_voice:
        from unityshots_jax.media.media_files import load_audio

        hop = audio_hop(codecs)
        wave = load_audio(with_voice[0].reference_voice, codecs.audio.sample_rate)[:, None]
        wave = np.repeat(wave, codecs.audio.channels, 1)  # mono file → the codec's channels
        frames = min(len(wave) // hop, cfg.ref_audio_frames)
        if frames < 1:
            i = prompt.characters.index(with_voice[0])
            raise _error(prompt, f"characters[{i}].reference_voice", f"shorter than one audio latent frame ({hop} samples)")
        ref_audio = np.zeros((cfg.ref_audio_frames, cfg.audio_channels), np.float32)
        ref_audio[:frames] = codecs.audio.encode(wave[: frames * hop])
        ref_mask = (np.arange(cfg.ref_audio_frames) < frames).astype(np.float32)
    return PreparedStory(
        texts=tuple(texts), video_context=contexts.video, audio_context=contexts.audio, context_mask=contexts.mask,
        modes=np.asarray([s.mode for s in prompt.shots]),
        cut_strength=np.asarray(cut_strengths(prompt, cfg.cut_priors, cut_strength), np.float32),
        n_frames=n_frames, n_audio=n_audio, first_frame=first, ref_image=ref_image, ref_audio=ref_audio,
        ref_audio_mask=ref_mask, durations=tuple(s.duration for s in prompt.shots),
        truncated=tuple(i for i, t in enumerate(texts) if codecs.text.truncated(t)),
    )  # fmt: skip


def stack_stories(stories: list[PreparedStory], cfg: StoryConfig, codecs: CodecBundle) -> StoryInputs:
    """Stories of equal shot count → batched, padded `StoryInputs` (missing references are zeros, masked)."""
    if len({s.num_shots for s in stories}) != 1:
        raise ValueError("stack_stories: every story in a batch needs the same number of shots")
    stack = lambda name: np.stack([getattr(s, name) for s in stories])  # noqa: E731
    has_image = [s.ref_image is not None for s in stories]
    has_voice = [s.ref_audio is not None for s in stories]
    ref_image = None
    if any(has_image):
        zero = np.zeros((cfg.ref_image_frames, cfg.height, cfg.width, cfg.latent_channels), np.float32)
        ref_image = np.stack([s.ref_image if s.ref_image is not None else zero for s in stories])
    ref_audio = ref_mask = None
    if any(has_voice):
        ref_audio = np.stack([s.ref_audio if s.ref_audio is not None else np.zeros((cfg.ref_audio_frames, cfg.audio_channels), np.float32) for s in stories])
        ref_mask = np.stack([s.ref_audio_mask if s.ref_audio_mask is not None else np.zeros((cfg.ref_audio_frames,), np.float32) for s in stories])
    negative = codecs.text.encode([""])
    b = len(stories)
    return make_story_inputs(
        cfg, video_context=stack("video_context"), audio_context=stack("audio_context"), context_mask=stack("context_mask"),
        modes=stack("modes"), cut_strength=stack("cut_strength"), n_frames=stack("n_frames"), n_audio=stack("n_audio"),
        first_frame=stack("first_frame"), ref_image=ref_image, ref_audio=ref_audio, ref_audio_mask=ref_mask,
        negative_video_context=np.repeat(negative.video, b, 0), negative_audio_context=np.repeat(negative.audio, b, 0),
        negative_context_mask=np.repeat(negative.mask, b, 0),
    )  # fmt: skip
