"""Exact measurements on toy-world media: who is on screen, whose voice is heard, how hard a cut is.

These read decoded pixels and waveforms only (never latents or ground truth), so they score generated media the
same way as rendered media; on renders passed through the codec they are exact (tests check every identity,
voice, world and lighting).

Identity: every pixel is labelled with its nearest palette colour (the worlds' sky and ground and the
characters' colours, each under both lightings, and the black of stripes). The character's colour is the
character colour with the most pixels; within the bounding box of those pixels, black pixels make it striped
(> 20 % of the figure) and the figure's fill of the box tells a square (≈ 1) from a diamond (≈ 0.5).
Voice: the mean codec amplitudes over frames with speech are matched to each voice's harmonic profile (cosine).
Transition strength: the mean absolute pixel difference between the last frame before a cut and the first
frame after it, divided by the same measure between the first frames of two unrelated random toy stories (so
≈ 1 for a cut between different worlds; a HARD cut inside one world measures well below that, a CONTINUE cut
lower still).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unityshots_jax.toy_world.codec import ToyAudioCodec
from unityshots_jax.toy_world.render import channel_amplitudes
from unityshots_jax.toy_world.world_spec import (
    AUDIO_FREQS,
    BEAT_HZ,
    COLOURS,
    LIGHTING,
    NUM_IDENTITIES,
    NUM_VOICES,
    PATTERNS,
    SHAPES,
    STRIPE,
    WORLDS,
)

MIN_PIXELS = 4  # fewer character pixels in a frame: nobody is on screen


def _palette() -> tuple[np.ndarray, np.ndarray]:
    """(colours `[P, 3]`, labels `[P]`): label c ≥ 0 a character colour index, −1 background, −2 stripe."""
    cols, labels = [], []
    for light in LIGHTING.values():
        for sky, ground in WORLDS.values():
            cols += [np.asarray(sky) * light, np.asarray(ground) * light]
            labels += [-1, -1]
        for i, c in enumerate(COLOURS.values()):
            cols.append(np.asarray(c) * light)
            labels.append(i)
    cols.append(np.asarray(STRIPE))
    labels.append(-2)
    return np.asarray(cols, np.float32), np.asarray(labels)


PALETTE, PALETTE_LABELS = _palette()


@dataclasses.dataclass(frozen=True)
class IdentityReading:
    """The detector's answer for one shot: identity index (−1: no character found) and its attributes."""

    identity: int
    colour: str | None
    pattern: str | None
    shape: str | None


def label_pixels(frame: np.ndarray) -> np.ndarray:
    """frame `[H, W, 3]` in [0, 1] → `[H, W]` palette labels (see `_palette`)."""
    d = np.sum((frame[:, :, None, :] - PALETTE[None, None]) ** 2, axis=-1)
    return PALETTE_LABELS[np.argmin(d, axis=-1)]


def read_frame(frame: np.ndarray) -> IdentityReading:
    """The character in one frame `[H, W, 3]`."""
    labels = label_pixels(np.asarray(frame, np.float32))
    counts = np.bincount(labels[labels >= 0], minlength=len(COLOURS))
    if counts.max(initial=0) < MIN_PIXELS:
        return IdentityReading(-1, None, None, None)
    colour = int(np.argmax(counts))
    ys, xs = np.nonzero(labels == colour)
    box = labels[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    body, stripe = np.sum(box == colour), np.sum(box == -2)
    pattern = 1 if stripe > 0.2 * (body + stripe) else 0
    shape = 0 if (body + stripe) / box.size > 0.75 else 1
    identity = (colour * len(PATTERNS) + pattern) * len(SHAPES) + shape
    return IdentityReading(identity, list(COLOURS)[colour], PATTERNS[pattern], SHAPES[shape])


def read_identity(frames: np.ndarray) -> IdentityReading:
    """The character of a shot `[T, H, W, 3]`: the most frequent per-frame reading (frames with nobody skipped)."""
    readings = [read_frame(f) for f in np.asarray(frames)]
    found = [r for r in readings if r.identity >= 0]
    if not found:
        return IdentityReading(-1, None, None, None)
    votes = np.bincount([r.identity for r in found], minlength=NUM_IDENTITIES)
    best = int(np.argmax(votes))
    return next(r for r in found if r.identity == best)


def _voice_templates() -> np.ndarray:
    t = np.stack([channel_amplitudes(v, np.ones(1), False)[0] for v in range(NUM_VOICES)])
    return t / np.linalg.norm(t, axis=1, keepdims=True)


VOICE_TEMPLATES = _voice_templates()
SPEECH_CHANNELS = np.asarray([f != BEAT_HZ for f in AUDIO_FREQS])


def read_voice(wave: np.ndarray, codec: ToyAudioCodec = ToyAudioCodec()) -> int:
    """The voice heard in `wave` `[N]` or `[N, 1]` (N a multiple of 800): 0 … 5, or −1 if nothing is said."""
    amps = np.clip((codec.encode(np.asarray(wave, np.float32).reshape(-1, 1)) + 1.0) / 8.0, 0.0, None) * SPEECH_CHANNELS
    speaking = amps.sum(axis=1) > 0.05
    if not speaking.any():
        return -1
    mean = amps[speaking].mean(axis=0)
    return int(np.argmax(VOICE_TEMPLATES @ (mean / (np.linalg.norm(mean) + 1e-12))))


def frame_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two frames `[H, W, 3]`."""
    return float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))


def unrelated_distance(samples: int = 256, seed: int = 0) -> float:
    """The mean `frame_distance` between first frames of independent random toy stories (the HARD-cut scale)."""
    from unityshots_jax.toy_world.render import render_shot_video
    from unityshots_jax.toy_world.world_spec import sample_story

    rng = np.random.default_rng(seed)
    frames = [render_shot_video(sample_story(rng, 1), 0)[0] for _ in range(2 * samples)]
    return float(np.mean([frame_distance(frames[2 * i], frames[2 * i + 1]) for i in range(samples)]))


def transition_strength(last_frame: np.ndarray, first_frame: np.ndarray, scale: float) -> float:
    """How hard a cut looks: `frame_distance` across it divided by `scale` (`unrelated_distance()`)."""
    return frame_distance(last_frame, first_frame) / scale
