"""The toy world's vocabulary and a story's exact ground truth (frozen dataclasses, no arrays).

A toy story is a handful of shots in one *world* (a two-tone landscape under bright or dim light, optional
music beat) about one *character* with a visual identity (colour × pattern × shape: 24 identities) and a voice
that belongs to it (pitch × harmonic profile: 6 voices). Each shot has a framing (wide / close-up), an action
(walk left / walk right / jump / stand still), an optional line of dialogue (nonsense syllables) and a cut type
into it: FIRST (shot 0), CONTINUE (the character carries on from where the previous shot ended, same framing)
or HARD (a new framing and position in the same world). `sample_story` draws one from a seeded generator.

Media rates (every codec and renderer reads them from here):
  video 24 × 24 px RGB at 8 fps; the codec packs 4 frames × 4 × 4 px into one latent (6 × 6 × 48 per latent frame)
  audio 16 kHz mono; the codec's latent frame is 800 samples (50 ms, 20 per second) × 16 channels
  shot durations are multiples of 0.5 s (whole latent frames of both streams).
"""

from __future__ import annotations

import dataclasses

import numpy as np

FRAME_SIZE = 24
FPS = 8
TEMPORAL_SCALE = 4
PATCH = 4
SAMPLE_RATE = 16_000
AUDIO_HOP = 800
DURATION_STEP = 0.5  # seconds: a whole number of video (4 frames) and audio (800 samples) latent frames

COLOURS = {  # bright-light RGB; saturated, so no colour is close to a (desaturated) background
    "red": (0.92, 0.12, 0.10),
    "yellow": (0.95, 0.88, 0.12),
    "cyan": (0.08, 0.85, 0.90),
    "magenta": (0.88, 0.12, 0.85),
    "orange": (1.00, 0.50, 0.00),
    "lime": (0.50, 1.00, 0.08),
}
PATTERNS = ("solid", "striped")
SHAPES = ("square", "diamond")
WORLDS = {  # (sky, ground) in bright light
    "meadow": ((0.62, 0.74, 0.86), (0.36, 0.52, 0.34)),
    "lake": ((0.74, 0.78, 0.80), (0.30, 0.40, 0.62)),
    "desert": ((0.86, 0.78, 0.62), (0.72, 0.60, 0.42)),
    "street": ((0.60, 0.60, 0.64), (0.50, 0.48, 0.45)),
}
LIGHTING = {"bright": 1.0, "dim": 0.7}
HORIZON = 12  # first ground row
STRIPE = (0.0, 0.0, 0.0)  # stripes are black
FRAMINGS = {"wide shot": 6, "close-up": 9}  # the character's half-size in px: large, so it dominates its shots
ACTIONS = ("walks left", "walks right", "jumps", "stands still")
WALK_SPEED = 0.5  # px per frame
JUMP_HEIGHT = 3.0  # px
NAMES = ("pip", "tam", "kiko", "zed", "mo", "lu", "bo", "ree", "fen", "oli")
SYLLABLES = ("ba", "lo", "mi", "ta", "ku", "ne", "so", "ri", "da", "po")

# Voices: a fundamental and its 2nd and 3rd harmonics with a profile; every frequency is on the audio codec's
# grid 120 + 40·c Hz (c = 0 … 15), an integer number of cycles per 50 ms latent frame.
PITCHES = {"low": 120.0, "middle": 160.0, "high": 200.0}
PROFILES = {"warm": (1.0, 0.5, 0.25), "bright": (0.35, 0.6, 1.0)}
BEAT_HZ = 720.0  # the music beat: a 50 ms pulse every 0.5 s in the top channel
AUDIO_FREQS = tuple(120.0 + 40.0 * c for c in range(16))
CUTS = ("FIRST", "CONTINUE", "HARD")


@dataclasses.dataclass(frozen=True)
class Character:
    name: str
    colour: str
    pattern: str
    shape: str

    @property
    def identity(self) -> int:
        """0 … 23: the index of (colour, pattern, shape)."""
        return (list(COLOURS).index(self.colour) * len(PATTERNS) + PATTERNS.index(self.pattern)) * len(SHAPES) + SHAPES.index(self.shape)

    @property
    def voice(self) -> int:
        """0 … 5: a character's voice belongs to it (like a person's): pitch by colour, profile by pattern+shape."""
        c = list(COLOURS).index(self.colour)
        pitch = c % 3
        profile = (c // 3 + PATTERNS.index(self.pattern) + SHAPES.index(self.shape)) % 2
        return pitch * 2 + profile

    @property
    def description(self) -> str:
        return f"a {self.colour} {self.pattern} {self.shape}"


def voice_spec(voice: int) -> tuple[float, tuple[float, float, float]]:
    """(fundamental Hz, harmonic amplitudes) of a voice index 0 … 5."""
    return list(PITCHES.values())[voice // 2], list(PROFILES.values())[voice % 2]


NUM_IDENTITIES = len(COLOURS) * len(PATTERNS) * len(SHAPES)
NUM_VOICES = len(PITCHES) * len(PROFILES)


@dataclasses.dataclass(frozen=True)
class ShotPlan:
    """One shot's ground truth. x, y: the character's centre at the shot's first frame (px); syllables: per audio
    latent frame, 0 (silence) or the syllable's loudness in (0, 1]."""

    duration: float
    cut: str
    framing: str
    action: str
    x: float
    y: float
    dialogue: str | None
    syllables: tuple[float, ...]

    @property
    def frames(self) -> int:
        return int(round(self.duration * FPS))



@dataclasses.dataclass(frozen=True)
class ToyStory:
    story_id: str
    world: str
    lighting: str
    music: bool
    character: Character
    shots: tuple[ShotPlan, ...]

    @property
    def caption(self) -> str:
        return f"a {self.world} in {self.lighting} light" + (" with music" if self.music else "")

    def shot_caption(self, i: int) -> str:
        s = self.shots[i]
        return f"{s.framing}. {self.character.name} {s.action}"


def ground_y(framing: str) -> float:
    """The centre row of a character standing on the ground."""
    return FRAME_SIZE - 2 - FRAMINGS[framing]


def shot_positions(plan: ShotPlan) -> np.ndarray:
    """`[frames, 2]` the character's centre (x, y) in px at every video frame of the shot."""
    r = FRAMINGS[plan.framing]
    t = np.arange(plan.frames, dtype=np.float64)
    x = np.full_like(t, plan.x)
    if plan.action == "walks left":
        x = plan.x - WALK_SPEED * t
    elif plan.action == "walks right":
        x = plan.x + WALK_SPEED * t
    x = np.clip(x, r, FRAME_SIZE - 1 - r)
    y = np.full_like(t, plan.y)
    if plan.action == "jumps":
        y = plan.y - JUMP_HEIGHT * ((t // TEMPORAL_SCALE) % 2)  # hops held for a whole latent frame
    return np.stack([x, y], -1)


def syllable_rhythm(rng: np.random.Generator, audio_frames: int, speaking: bool) -> tuple[float, ...]:
    """Speech-like rhythm per 50 ms audio latent frame: syllables of 2–4 frames, gaps of 1–2 frames."""
    out = np.zeros(audio_frames)
    if speaking:
        pos = int(rng.integers(0, 3))
        while pos < audio_frames:
            n = int(rng.integers(2, 5))
            out[pos : pos + n] = rng.uniform(0.7, 1.0)
            pos += n + int(rng.integers(1, 3))
    return tuple(float(v) for v in out)


def sample_story(
    rng: np.random.Generator,
    num_shots: int,
    *,
    story_id: str = "toy",
    durations: tuple[float, ...] = (1.0, 1.5, 2.0),
    p_continue: float = 0.4,
    p_dialogue: float = 0.6,
    p_music: float = 0.3,
) -> ToyStory:
    """A random story of `num_shots` shots with exact ground truth."""
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    character = Character(
        name=NAMES[int(rng.integers(len(NAMES)))],
        colour=colour,
        pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        shape=SHAPES[int(rng.integers(len(SHAPES)))],
    )
    shots: list[ShotPlan] = []
    for i in range(num_shots):
        duration = float(durations[int(rng.integers(len(durations)))])
        action = ACTIONS[int(rng.integers(len(ACTIONS)))]
        cut = "FIRST" if i == 0 else ("CONTINUE" if rng.random() < p_continue else "HARD")
        if cut == "CONTINUE":
            prev = shots[-1]
            framing = prev.framing
            x = float(shot_positions(dataclasses.replace(prev, duration=prev.duration + 1 / FPS))[-1, 0])
        else:
            framing = list(FRAMINGS)[int(rng.integers(len(FRAMINGS)))]
            r = FRAMINGS[framing]
            x = float(rng.uniform(r, FRAME_SIZE - 1 - r))
        speaking = bool(rng.random() < p_dialogue)
        dialogue = " ".join(SYLLABLES[int(j)] for j in rng.integers(0, len(SYLLABLES), 3)) if speaking else None
        audio_frames = int(round(duration * SAMPLE_RATE / AUDIO_HOP))
        shots.append(ShotPlan(duration, cut, framing, action, x, ground_y(framing), dialogue, syllable_rhythm(rng, audio_frames, speaking)))
    world = list(WORLDS)[int(rng.integers(len(WORLDS)))]
    lighting = list(LIGHTING)[int(rng.integers(len(LIGHTING)))]
    return ToyStory(story_id, world, lighting, bool(rng.random() < p_music), character, tuple(shots))
