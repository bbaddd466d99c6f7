"""A story file's conditioning as host arrays for one story (`PreparedStory`), checked against the model.

Every per-shot array has a leading shot axis k; `stack_stories` batches stories of equal k into `StoryInputs`.
Checks name the story field: a duration the model cannot hold (`shots[2].duration`), a reference file of the
wrong kind, too many shots for the model. References: each character's portrait and voice are encoded once, and
every shot carries the portrait and voice of the characters it is bound to (`character_binding.reference_owners`:
an r2v shot its subject's portrait, a shot with dialogue its speaker's voice). When every shot of every story in a
batch carries the same references (one character, say), `stack_stories` gives the sampler story-level references,
exactly the inputs a one-reference story always had; otherwise per-shot references (`StoryInputs.shot_refs`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.prompt.character_binding import reference_owners
from unityshots_jax.prompt.story_prompt import StoryPrompt, StoryPromptError, compose_shot_texts, cut_strengths
from unityshots_jax.story.shot_sequence import References
from unityshots_jax.story.story_codecs import audio_hop
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_inputs import StoryInputs, make_story_inputs


@dataclasses.dataclass(frozen=True)
class PreparedStory:
    """texts: per shot; video_context `[k, S, Dv]`, audio_context `[k, S, Da]`, context_mask `[k, S]`, modes `[k]`,
    cut_strength `[k]`, n_frames `[k]` latent frames, n_audio `[k]` audio latent frames, first_frame
    `[k, h, w, C]`; each shot's references: shot_ref_image `[k, R, h, w, C]` with shot_ref_image_valid `[k]`
    (0: the shot has no portrait, zeros), shot_ref_audio `[k, Fr, Ca]` with shot_ref_audio_mask `[k, Fr]` (all 0:
    no voice); ref_owners: per shot, the names of the characters whose (portrait, voice) it carries (None: none);
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
    shot_ref_image: np.ndarray
    shot_ref_image_valid: np.ndarray
    shot_ref_audio: np.ndarray
    shot_ref_audio_mask: np.ndarray
    ref_owners: tuple[tuple[str | None, str | None], ...]
    durations: tuple[float, ...]
    truncated: tuple[int, ...]

    @property
    def num_shots(self) -> int:
        return len(self.texts)


def _error(prompt: StoryPrompt, field: str, reason: str) -> StoryPromptError:
    return StoryPromptError(str(prompt.source or "<story>"), field, reason)


def causal_video(codecs: CodecBundle | None) -> bool:
    """Whether the video codec is causal: its first latent frame stands for one frame (LTX: T·(n−1)+1 frames from
    n latents), so an image is one frame and a shot needs one latent frame more than its duration."""
    return codecs is not None and codecs.video.frame_count(1) == 1


def causal_audio(codecs: CodecBundle | None) -> bool:
    """Whether the audio codec decodes fewer samples than its latents span (LTX-2.3's causal audio VAE: 4n − 3 mel
    frames from n latents), so a shot needs one audio latent more than its duration."""
    if codecs is None:
        return False
    per_latent = codecs.audio.output_sample_rate / codecs.audio.latent_rate
    return codecs.audio.decoded_samples(2) < round(2 * per_latent)


def shot_lengths(prompt: StoryPrompt, cfg: StoryConfig, codecs: CodecBundle | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames `[k]`, n_audio `[k]`) latent frames of every shot, or StoryPromptError naming the shot whose
    duration is not a whole number of video latent steps (T frames) or does not fit the model.

    A shot of d seconds has d·fps/T video latents (+1 for a causal codec, see `causal_video`) and ceil(d · audio
    latent rate) audio latents (+1 for a causal audio codec, `causal_audio`); decoding cuts both streams to exactly
    d seconds (`StoryGenerator.decode`)."""
    video_rate = cfg.fps / cfg.temporal_scale
    audio_rate = 1.0 / (cfg.audio_hop_seconds * cfg.audio_downsample)
    extra, audio_extra = int(causal_video(codecs)), int(causal_audio(codecs))
    lo = max(cfg.stm_frames - extra, 1) / video_rate
    hi = min((cfg.video_frames - extra) / video_rate, (cfg.audio_frames - audio_extra) / audio_rate)
    nf, na = [], []
    for i, shot in enumerate(prompt.shots):
        f, a = shot.duration * video_rate, shot.duration * audio_rate
        if abs(f - round(f)) > 1e-6 or not lo - 1e-9 <= shot.duration <= hi + 1e-9:
            raise _error(prompt, f"shots[{i}].duration", f"{shot.duration:g} s: this model makes shots of {lo:g} to "
                         f"{hi:g} s in steps of {1 / video_rate:g} s")
        nf.append(round(f) + extra)
        na.append(math.ceil(a - 1e-6) + audio_extra)
    return np.asarray(nf, np.int32), np.asarray(na, np.int32)


def _image_latent(path, codecs: CodecBundle) -> np.ndarray:
    """An image file → one latent frame `[h, w, C]`: for a causal codec the image as one frame, prepared as the
    LTX-2.3 pipelines prepare conditioning images (`media.image_conditioning`); otherwise the frame held for a whole
    latent frame."""
    if causal_video(codecs):
        from unityshots_jax.media.image_conditioning import load_conditioning_image

        image = load_conditioning_image(path, *codecs.frame_size) / np.float32(255.0)
        return codecs.video.encode(image[None])[0]
    from unityshots_jax.media.media_files import load_image

    frame = load_image(path, size=codecs.frame_size)
    return codecs.video.encode(np.repeat(frame[None], codecs.video.temporal_scale, 0))[0]


def _voice_latent(prompt: StoryPrompt, index: int, cfg: StoryConfig, codecs: CodecBundle) -> tuple[np.ndarray, np.ndarray]:
    """Character `index`'s reference voice → (audio latents `[Fr, Ca]`, mask `[Fr]`): the clip's first Fr latent
    frames, zero-padded and masked beyond its length."""
    from unityshots_jax.media.media_files import load_audio

    hop = audio_hop(codecs)
    wave = load_audio(prompt.characters[index].reference_voice, codecs.audio.sample_rate)[:, None]
    wave = np.repeat(wave, codecs.audio.channels, 1)  # mono file → the codec's channels
    frames = min(len(wave) // hop, cfg.ref_audio_frames)
    if frames < 1:
        raise _error(prompt, f"characters[{index}].reference_voice", f"shorter than one audio latent frame ({hop} samples)")
    audio = np.zeros((cfg.ref_audio_frames, cfg.audio_channels), np.float32)
    latents = codecs.audio.encode(wave[: frames * hop])  # a causal audio VAE may give one latent more: keep `frames`
    frames = min(frames, len(latents))
    audio[:frames] = latents[:frames]
    return audio, (np.arange(cfg.ref_audio_frames) < frames).astype(np.float32)


def _shot_references(prompt: StoryPrompt, cfg: StoryConfig, codecs: CodecBundle) -> dict:
    """Each shot's references as `PreparedStory` fields (shot_ref_image `[k, R, h, w, C]`, shot_ref_image_valid
    `[k]`, shot_ref_audio `[k, Fr, Ca]`, shot_ref_audio_mask `[k, Fr]`, ref_owners); every portrait and voice a
    shot uses is encoded once."""
    k = len(prompt.shots)
    owners = reference_owners(prompt)
    index = {c.name: i for i, c in enumerate(prompt.characters)}
    image = np.zeros((k, cfg.ref_image_frames, cfg.height, cfg.width, cfg.latent_channels), np.float32)
    audio = np.zeros((k, cfg.ref_audio_frames, cfg.audio_channels), np.float32)
    image_valid, audio_mask = np.zeros((k,), np.float32), np.zeros((k, cfg.ref_audio_frames), np.float32)
    portraits: dict[str, np.ndarray] = {}
    voices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i, (portrait, voice) in enumerate(owners):
        if portrait is not None:
            if portrait not in portraits:
                portraits[portrait] = _image_latent(prompt.characters[index[portrait]].reference_image, codecs)
            image[i], image_valid[i] = portraits[portrait][None], 1.0  # the portrait held for R latent frames
        if voice is not None:
            if voice not in voices:
                voices[voice] = _voice_latent(prompt, index[voice], cfg, codecs)
            audio[i], audio_mask[i] = voices[voice]
    return {"shot_ref_image": image, "shot_ref_image_valid": image_valid, "shot_ref_audio": audio,
            "shot_ref_audio_mask": audio_mask, "ref_owners": owners}


def prepare_story(prompt: StoryPrompt, cfg: StoryConfig, codecs: CodecBundle, *, cut_strength: float | None = None) -> PreparedStory:
    """The conditioning of `prompt` for a model of story config `cfg` (see `PreparedStory`)."""
    k = len(prompt.shots)
    if k > cfg.max_shots:
        raise _error(prompt, "shots", f"{k} shots; this model generates at most {cfg.max_shots}")
    n_frames, n_audio = shot_lengths(prompt, cfg, codecs)
    texts = compose_shot_texts(prompt)
    contexts = codecs.text.encode(texts)
    frame_shape = (cfg.height, cfg.width, cfg.latent_channels)
    first = np.zeros((k, *frame_shape), np.float32)
    for i, shot in enumerate(prompt.shots):
        if shot.first_frame is not None:
            first[i] = _image_latent(shot.first_frame, codecs)
    refs = _shot_references(prompt, cfg, codecs)
    return PreparedStory(
        texts=tuple(texts), video_context=contexts.video, audio_context=contexts.audio, context_mask=contexts.mask,
        modes=np.asarray([s.mode for s in prompt.shots]),
        cut_strength=np.asarray(cut_strengths(prompt, cfg.cut_priors, cut_strength), np.float32),
        n_frames=n_frames, n_audio=n_audio, first_frame=first, **refs, durations=tuple(s.duration for s in prompt.shots),
        truncated=tuple(i for i, t in enumerate(texts) if codecs.text.truncated(t)),
    )  # fmt: skip


def stack_stories(stories: list[PreparedStory], cfg: StoryConfig, codecs: CodecBundle,
                  negative_prompt: str = "") -> StoryInputs:
    """Stories of equal shot count → batched, padded `StoryInputs` (missing references are zeros, masked; per-shot
    references only when some story's shots differ in them, see `_stacked_references`); the unconditioned guidance
    pass sees `negative_prompt`."""
    if len({s.num_shots for s in stories}) != 1:
        raise ValueError("stack_stories: every story in a batch needs the same number of shots")
    stack = lambda name: np.stack([getattr(s, name) for s in stories])  # noqa: E731
    refs = _stacked_references(stories)
    negative = codecs.text.encode([negative_prompt])
    b = len(stories)
    return make_story_inputs(
        cfg, video_context=stack("video_context"), audio_context=stack("audio_context"), context_mask=stack("context_mask"),
        modes=stack("modes"), cut_strength=stack("cut_strength"), n_frames=stack("n_frames"), n_audio=stack("n_audio"),
        first_frame=stack("first_frame"), **refs,
        negative_video_context=np.repeat(negative.video, b, 0), negative_audio_context=np.repeat(negative.audio, b, 0),
        negative_context_mask=np.repeat(negative.mask, b, 0),
    )  # fmt: skip


def _stacked_references(stories: list[PreparedStory]) -> dict:
    """The references of a batch of stories as `make_story_inputs` arguments: story-level (ref_image
    `[B, R, h, w, C]` or None, ref_audio `[B, Fr, Ca]` + ref_audio_mask `[B, Fr]` or None) when every story's shots
    all carry the same references, else `shot_refs` (`References` of `[B, k, …]` arrays)."""
    per_shot = References(*(np.stack([getattr(s, f"shot_ref_{name}") for s in stories])
                            for name in ("image", "image_valid", "audio", "audio_mask")))
    if not all(np.array_equal(x, np.broadcast_to(x[:, :1], x.shape)) for x in (per_shot.image, per_shot.image_valid,
                                                                               per_shot.audio, per_shot.audio_mask)):
        return {"shot_refs": per_shot}
    has_image, has_voice = per_shot.image_valid.any(), per_shot.audio_mask.any()
    return {"ref_image": per_shot.image[:, 0] if has_image else None,
            "ref_audio": per_shot.audio[:, 0] if has_voice else None,
            "ref_audio_mask": per_shot.audio_mask[:, 0] if has_voice else None}
