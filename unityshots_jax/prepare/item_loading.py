"""Stage 1 of preparing an item: decode, split into shots, check, cut each shot to the bucket, compute the boundary
signals and cut types, compose the texts and load the references. CPU only; no codec is run (the codecs are read
for their rates, scales and bucket only).

Every problem with the item's media or content raises `ItemSkip` with a one-line reason naming the field
(`shots[1].caption: missing`) or file; `load_item` turns it into a `SkippedItem`.
"""

from __future__ import annotations

import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD
from unityshots_jax.media.image_conditioning import ImageConditioningError, load_conditioning_image
from unityshots_jax.prepare.boundary_signals import boundary_signals
from unityshots_jax.prepare.buckets import (
    Bucket,
    bucket_problem,
    model_bucket,
    parse_bucket,
    resize_crop_frames,
    shot_frame_indices,
)
from unityshots_jax.prepare.item_types import ItemSkip, LoadedItem, PrepareOptions, SkippedItem
from unityshots_jax.prepare.manifest import FromShot, ManifestItem, ShotSpec
from unityshots_jax.prepare.media_decode import DecodedClip, MediaDecodeError, decode_clip
from unityshots_jax.prepare.shot_detection import detect_cuts, shots_from_cuts
from unityshots_jax.prompt.story_prompt import Character, Shot, StoryPrompt, compose_shot_texts
from unityshots_jax.story.story_config import StoryConfig


def item_bucket(item: ManifestItem, codecs: CodecBundle, cfg: StoryConfig, options: PrepareOptions) -> Bucket:
    """The item's bucket (its own, else the options', else the model's), checked against the codecs and `cfg`."""
    try:
        bucket = parse_bucket(item.bucket) if item.bucket else options.bucket or model_bucket(cfg)
    except ValueError as exc:
        raise ItemSkip(f"bucket: {exc}") from None
    problem = bucket_problem(bucket, codecs, cfg)
    if problem:
        raise ItemSkip(problem)
    return bucket


def item_shots(item: ManifestItem, clip: DecodedClip, options: PrepareOptions) -> list[ShotSpec]:
    """The given shots, or the detected ones with the item's captions in order."""
    if item.shots is not None:
        return list(item.shots)
    cuts = detect_cuts(clip.frames, threshold=options.detect_threshold, min_shot_frames=options.detect_min_shot_frames)
    spans = shots_from_cuts(cuts, clip.times, clip.duration)
    if len(item.captions) != len(spans):
        raise ItemSkip(f"captions: {len(item.captions)} given, but {len(spans)} shots were detected "
                       f"(cuts at frames {cuts})")
    return [ShotSpec(a, b, c) for (a, b), c in zip(spans, item.captions)]


def check_shots(shots: list[ShotSpec], clip: DecodedClip, cfg: StoryConfig) -> None:
    """ItemSkip for too many shots, a shot outside the video, overlapping shots or a missing caption."""
    if len(shots) > cfg.max_shots:
        raise ItemSkip(f"shots: {len(shots)} shots; the story model takes at most {cfg.max_shots}")
    tolerance = 0.5 / clip.fps
    for i, shot in enumerate(shots):
        if shot.start < 0 or shot.end > clip.duration + tolerance:
            raise ItemSkip(f"shots[{i}]: {shot.start:g}–{shot.end:g} s lies outside the video (0–{clip.duration:g} s)")
        if i and shot.start < shots[i - 1].end - 1e-6:
            raise ItemSkip(f"shots[{i}]: starts at {shot.start:g} s, before shots[{i - 1}] ends ({shots[i - 1].end:g} s)")
        if shot.caption is None or not shot.caption.strip():
            raise ItemSkip(f"shots[{i}].caption: missing")


def cut_shot(clip: DecodedClip, shot: ShotSpec, i: int, bucket: Bucket, fps: float, temporal_scale: int,
             stm_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Shot i → (frames float32 `[T, H, W, 3]` in [0, 1], audio float32 `[N, channels]` of the same span);
    ItemSkip when it is shorter than the story model's short-term memory (stm_frames latent frames)."""
    index = shot_frame_indices(clip.times, shot.start, shot.end, fps, bucket.frames, temporal_scale)
    need = temporal_scale * (stm_frames - 1) + 1
    if len(index) < need:
        raise ItemSkip(f"shots[{i}]: {shot.end - shot.start:.3f} s is too short: the short-term memory needs "
                       f"{stm_frames} latent frames = {need} frames at {fps:g} fps ({need / fps:.3f} s)")
    frames = resize_crop_frames(clip.frames[index], bucket.height, bucket.width)
    a = round(shot.start * clip.sample_rate)
    b = a + round(len(index) / fps * clip.sample_rate)
    audio = clip.audio[a:b]
    if len(audio) < b - a:
        audio = np.concatenate([audio, np.zeros((b - a - len(audio), audio.shape[1]), np.float32)])
    return frames, audio


def shot_texts(item: ManifestItem, shots: list[ShotSpec]) -> list[str]:
    """Each shot's text, composed as generation composes a story file's (`compose_shot_texts`); characters without
    a description are not introduced."""
    characters = tuple(Character(c.name, c.description) for c in item.characters if c.description.strip())
    prompt = StoryPrompt(
        caption=item.caption, negative_caption="", characters=characters,
        shots=tuple(Shot(duration=s.end - s.start, caption=s.caption or "", dialogue=s.dialogue, speaker=s.speaker)
                    for s in shots))
    return compose_shot_texts(prompt)


def _reference_image(item, frames, bucket) -> tuple[np.ndarray | None, int | None]:
    """(portrait float32 `[H, W, 3]` in [0, 1], the shot it is cut from) of the first character with one."""
    for j, character in enumerate(item.characters):
        ref, field = character.reference_image, f"characters[{j}].reference_image"
        if isinstance(ref, FromShot):
            if ref.index >= len(frames):
                raise ItemSkip(f"{field}.from_shot: shot {ref.index} does not exist ({len(frames)} shots)")
            shot = frames[ref.index]
            return shot[len(shot) // 2], ref.index
        if ref is not None:
            try:
                return load_conditioning_image(str(ref), bucket.height, bucket.width) / np.float32(255.0), None
            except ImageConditioningError as exc:
                raise ItemSkip(f"{field}: {exc}") from None
    return None, None


def _reference_voice(item, clip, shots, channels) -> tuple[np.ndarray | None, int | None]:
    """(voice float32 `[N, channels]` at the clip's rate, the shot it is cut from) of the first character with one."""
    for j, character in enumerate(item.characters):
        ref, field = character.reference_voice, f"characters[{j}].reference_voice"
        if isinstance(ref, FromShot):
            if ref.index >= len(shots):
                raise ItemSkip(f"{field}.from_shot: shot {ref.index} does not exist ({len(shots)} shots)")
            s = shots[ref.index]
            return clip.audio[round(s.start * clip.sample_rate):round(s.end * clip.sample_rate)], ref.index
        if ref is not None:
            try:
                voice = decode_voice(ref, clip.sample_rate, channels)
            except MediaDecodeError as exc:
                raise ItemSkip(f"{field}: {exc}") from None
            return voice, None
    return None, None


def decode_voice(path, sample_rate: int, channels: int) -> np.ndarray:
    """A voice clip (any audio or video file) → float32 `[N, channels]` at `sample_rate`; MediaDecodeError."""
    from unityshots_jax.media.media_files import load_audio
    from unityshots_jax.media.mp4_writer import MediaError

    try:
        mono = load_audio(path, sample_rate)
    except MediaError as exc:
        raise MediaDecodeError(str(exc)) from None
    return np.repeat(mono[:, None], channels, axis=1)


def cut_types(s_vis: np.ndarray, hard_threshold: float) -> np.ndarray:
    """int32 `[k]`: FIRST for shot 0, then HARD where s_vis ≥ hard_threshold, else CONTINUE."""
    cut = np.where(s_vis >= hard_threshold, HARD, CONTINUE).astype(np.int32)
    cut[0] = FIRST
    return cut


def _load(item: ManifestItem, codecs: CodecBundle, cfg: StoryConfig, options: PrepareOptions) -> LoadedItem:
    bucket = item_bucket(item, codecs, cfg, options)
    try:
        clip = decode_clip(item.video, codecs.audio.sample_rate, codecs.audio.channels)
    except MediaDecodeError as exc:
        raise ItemSkip(f"video: {exc}") from None
    shots = item_shots(item, clip, options)
    check_shots(shots, clip, cfg)
    video, audio = codecs.video, codecs.audio
    cut = [cut_shot(clip, s, i, bucket, video.fps, video.temporal_scale, cfg.stm_frames) for i, s in enumerate(shots)]
    frames, waves = tuple(c[0] for c in cut), tuple(c[1] for c in cut)
    spans = [(s.start, s.end) for s in shots]
    signals = boundary_signals(clip.frames, clip.times, clip.audio, clip.sample_rate, spans)
    ref_image, image_shot = _reference_image(item, frames, bucket)
    ref_voice, voice_shot = _reference_voice(item, clip, shots, audio.channels)
    hop = audio.sample_rate / audio.latent_rate
    if ref_voice is not None and len(ref_voice) < hop:
        raise ItemSkip(f"reference voice: {len(ref_voice)} samples, shorter than one audio latent frame ({hop:g})")
    return LoadedItem(
        item_id=item.item_id, shots=tuple(spans), frames=frames, audio=waves, sample_rate=clip.sample_rate,
        texts=tuple(shot_texts(item, shots)), signals=signals,
        cut_type=cut_types(signals["s_vis"], options.hard_threshold), ref_image=ref_image, ref_image_shot=image_shot,
        ref_voice=ref_voice, ref_voice_shot=voice_shot)


def load_item(item: ManifestItem, codecs: CodecBundle, cfg: StoryConfig,
              options: PrepareOptions | None = None) -> LoadedItem | SkippedItem:
    """Stage 1 (see module doc): a LoadedItem, or a SkippedItem with the reason; never raises for bad media.
    options default `PrepareOptions()`."""
    try:
        return _load(item, codecs, cfg, options or PrepareOptions())
    except ItemSkip as skip:
        return SkippedItem(item.item_id, str(skip), item.origin)
