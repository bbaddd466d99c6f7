"""Pixels and samples of a toy story: exact renders of its ground truth (numpy, float32 in [0, 1] / [-1, 1])."""

from __future__ import annotations

import numpy as np

from unityshots_jax.toy_world.world_spec import (
    AUDIO_FREQS,
    AUDIO_HOP,
    BEAT_HZ,
    COLOURS,
    FRAME_SIZE,
    FRAMINGS,
    HORIZON,
    LIGHTING,
    SAMPLE_RATE,
    STRIPE,
    WORLDS,
    Character,
    ShotPlan,
    ToyStory,
    syllable_rhythm,
    shot_positions,
    voice_spec,
)

PORTRAIT_BACKGROUND = (0.5, 0.5, 0.5)
VOICE_GAIN = 0.25  # per-harmonic amplitude of a syllable at loudness 1
BEAT_GAIN = 0.3


def background(world: str, lighting: str) -> np.ndarray:
    """`[H, W, 3]` the world's sky and ground under its lighting."""
    sky, ground = (np.asarray(c, np.float32) * LIGHTING[lighting] for c in WORLDS[world])
    img = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.float32)
    img[:HORIZON], img[HORIZON:] = sky, ground
    return img


def character_mask(character: Character, framing: str, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
    """(body `[H, W]` bool, stripes `[H, W]` bool) of the character centred at (x, y) px (sub-pixel positions
    are rounded: the renderer draws whole pixels)."""
    r = FRAMINGS[framing]
    cx, cy = int(round(x)), int(round(y))
    yy, xx = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE]
    dx, dy = np.abs(xx - cx), np.abs(yy - cy)
    inside = (dx <= r) & (dy <= r) if character.shape == "square" else (dx + dy <= r + 1)
    stripes = inside & (((yy - (cy - r)) // 2) % 2 == 1) if character.pattern == "striped" else np.zeros_like(inside)
    return inside, stripes


def draw_character(img: np.ndarray, character: Character, framing: str, x: float, y: float, light: float) -> np.ndarray:
    """The frame `img` `[H, W, 3]` with the character drawn on it (a new array)."""
    body, stripes = character_mask(character, framing, x, y)
    out = img.copy()
    out[body] = np.asarray(COLOURS[character.colour], np.float32) * light
    out[stripes] = np.asarray(STRIPE, np.float32)
    return out


def render_shot_video(story: ToyStory, index: int) -> np.ndarray:
    """`[frames, H, W, 3]` float32 in [0, 1]: shot `index` at 8 fps."""
    plan = story.shots[index]
    bg = background(story.world, story.lighting)
    light = LIGHTING[story.lighting]
    return np.stack([draw_character(bg, story.character, plan.framing, x, y, light) for x, y in shot_positions(plan)])


def render_portrait(character: Character) -> np.ndarray:
    """`[H, W, 3]` the character close-up and centred on neutral grey: its reference image."""
    bg = np.broadcast_to(np.asarray(PORTRAIT_BACKGROUND, np.float32), (FRAME_SIZE, FRAME_SIZE, 3))
    r = FRAMINGS["close-up"]
    return draw_character(bg, character, "close-up", FRAME_SIZE // 2, FRAME_SIZE - 2 - r, 1.0)


def channel_amplitudes(voice: int, loudness: np.ndarray, music: bool, start_frame: int = 0) -> np.ndarray:
    """`[frames, 16]` the amplitude of every codec frequency per 50 ms frame: the voice's harmonics scaled by each
    frame's loudness `[frames]` (0 = silent), plus the beat (every 10th frame of story time) when `music`."""
    f0, profile = voice_spec(voice)
    amps = np.zeros((len(loudness), len(AUDIO_FREQS)), np.float32)
    for harmonic, gain in enumerate(profile, start=1):
        amps[:, AUDIO_FREQS.index(f0 * harmonic)] = VOICE_GAIN * gain * np.asarray(loudness, np.float32)
    if music:
        frames = start_frame + np.arange(len(loudness))
        amps[frames % 10 == 0, AUDIO_FREQS.index(BEAT_HZ)] = BEAT_GAIN
    return amps


def synthesize(amps: np.ndarray, start_sample: int = 0) -> np.ndarray:
    """`[frames·800]` float32 waveform: every codec frequency as a sine with its per-frame amplitude (held over the
    frame), phase continuous in story time from `start_sample`."""
    n = amps.shape[0] * AUDIO_HOP
    t = (start_sample + np.arange(n)) / SAMPLE_RATE
    held = np.repeat(amps, AUDIO_HOP, axis=0)  # [n, 16]
    sines = np.sin(2 * np.pi * np.outer(t, AUDIO_FREQS))
    return np.sum(held * sines, axis=1).astype(np.float32)


def render_shot_audio(story: ToyStory, index: int) -> np.ndarray:
    """`[duration·16000]` float32 waveform of shot `index`: the character's speech (if any) and the beat."""
    start = sum(int(round(s.duration * SAMPLE_RATE / AUDIO_HOP)) for s in story.shots[:index])
    plan: ShotPlan = story.shots[index]
    amps = channel_amplitudes(story.character.voice, np.asarray(plan.syllables), story.music, start)
    return synthesize(amps, start * AUDIO_HOP)


def render_voice_clip(character: Character, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A reference voice clip `[seconds·16000]`: the character saying a few syllables, no music."""
    frames = int(round(seconds * SAMPLE_RATE / AUDIO_HOP))
    loud = np.asarray(syllable_rhythm(np.random.default_rng(seed), frames, True))
    return synthesize(channel_amplitudes(character.voice, loud, False))
