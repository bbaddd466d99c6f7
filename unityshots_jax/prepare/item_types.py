"""The values passed between the per-item stages of data preparation (all frozen; numpy arrays inside).

    ManifestItem ──load_item──▶ LoadedItem ──encode_item──▶ StoryRecord
          └────────────── or SkippedItem(item_id, reason) at any stage ──────────────┘
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unityshots_jax.prepare.buckets import Bucket
from unityshots_jax.prepare.shot_detection import DEFAULT_MIN_SHOT_FRAMES, DEFAULT_THRESHOLD

HARD_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """An item that gives no record: its id, why (one line naming the field or file), and where it was written."""

    item_id: str
    reason: str
    origin: str = ""


class ItemSkip(ValueError):
    """Raised inside a stage to skip the item with `reason`; the stage's entry point returns a SkippedItem."""


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """How items are prepared.

    bucket: the pixel size and frame count of every shot (None: the story model's, `buckets.model_bucket`);
    latent_dtype: dtype the record stores latents, contexts and references in ("float32", "bfloat16", "float16");
    detect_threshold / detect_min_shot_frames: the frame-difference shot detector (`shot_detection`);
    hard_threshold: a cut is HARD when s_vis ≥ this, else CONTINUE.
    """

    bucket: Bucket | None = None
    latent_dtype: str = "float32"
    detect_threshold: float = DEFAULT_THRESHOLD
    detect_min_shot_frames: int = DEFAULT_MIN_SHOT_FRAMES
    hard_threshold: float = HARD_THRESHOLD


@dataclasses.dataclass(frozen=True)
class LoadedItem:
    """An item decoded, checked and cut to its bucket, ready for the codecs (k shots).

    shots: (start, end) s per shot; frames: per shot float32 `[T_i, H, W, 3]` in [0, 1] (T_i = 8m + 1);
    audio: per shot float32 `[N_i, channels]` at `sample_rate`, the span of the shot's frames; texts: the composed
    text of each shot; signals: {"s_vis", "s_aud", "s_beat"} float32 `[k]`; cut_type int32 `[k]`;
    ref_image: float32 `[H, W, 3]` in [0, 1] or None, cut from shot `ref_image_shot` (None: from a file);
    ref_voice: float32 `[N, channels]` at `sample_rate` or None, from shot `ref_voice_shot` (None: from a file).
    """

    item_id: str
    shots: tuple[tuple[float, float], ...]
    frames: tuple[np.ndarray, ...]
    audio: tuple[np.ndarray, ...]
    sample_rate: int
    texts: tuple[str, ...]
    signals: dict
    cut_type: np.ndarray
    ref_image: np.ndarray | None = None
    ref_image_shot: int | None = None
    ref_voice: np.ndarray | None = None
    ref_voice_shot: int | None = None
