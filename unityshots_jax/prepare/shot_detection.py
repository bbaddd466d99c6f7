"""Deterministic shot detection by frame difference (the "detect" of a manifest), and the thumbnails it uses.

Each frame is area-averaged to a `THUMB × THUMB` RGB thumbnail in [0, 1]; d_t is the mean absolute difference
between thumbnails t−1 and t. Frame t starts a new shot when d_t ≥ `threshold` (default 0.1: a tenth of the full
range on average over every pixel and channel — a change of scene, not motion within one), keeping of cut
candidates closer than `min_shot_frames` only the one with the largest d_t (the earliest on a tie). This finds hard
cuts; dissolves and other gradual transitions are not detected (they stay inside one shot). TransNetV2 or
PySceneDetect can replace this detector in a later part; it is the documented, dependency-free baseline.
"""

from __future__ import annotations

import numpy as np

THUMB = 32
DEFAULT_THRESHOLD = 0.1
DEFAULT_MIN_SHOT_FRAMES = 6


def thumbnails(frames: np.ndarray, size: int = THUMB) -> np.ndarray:
    """uint8 `[T, H, W, 3]` → float32 `[T, min(H, size), min(W, size), 3]` in [0, 1], each cell the mean of its
    block of pixels (blocks split the frame as evenly as integer rows / columns allow)."""
    x = np.asarray(frames, np.float32) / np.float32(255.0)
    for axis in (1, 2):
        n = x.shape[axis]
        if n > size:
            edges = (np.arange(size) * n) // size
            counts = np.diff(np.append(edges, n)).astype(np.float32)
            x = np.add.reduceat(x, edges, axis=axis) / np.expand_dims(counts, [a for a in range(4) if a != axis])
    return x


def frame_differences(thumbs: np.ndarray) -> np.ndarray:
    """thumbnails `[T, h, w, 3]` → float32 `[T]`: d[t] = mean |thumb[t] − thumb[t−1]| (d[0] = 0)."""
    d = np.zeros((thumbs.shape[0],), np.float32)
    if thumbs.shape[0] > 1:
        d[1:] = np.abs(np.diff(thumbs, axis=0)).mean(axis=(1, 2, 3))
    return d


def detect_cuts(frames: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
                min_shot_frames: int = DEFAULT_MIN_SHOT_FRAMES) -> list[int]:
    """The frames (indices into `frames` uint8 `[T, H, W, 3]`) that start a new shot, ascending (see module doc)."""
    d = frame_differences(thumbnails(frames))
    candidates = [int(t) for t in np.flatnonzero(d >= threshold) if t > 0]
    accepted: list[int] = []
    for t in sorted(candidates, key=lambda t: (-float(d[t]), t)):
        if all(abs(t - a) >= min_shot_frames for a in accepted):
            accepted.append(t)
    return sorted(accepted)


def shots_from_cuts(cuts: list[int], times: np.ndarray, duration: float) -> list[tuple[float, float]]:
    """Cut frame indices → shots as (start, end) seconds: from 0 to the first cut's frame time, …, the last cut's
    frame time to `duration`. times: float `[T]` frame times in seconds."""
    bounds = [0.0] + [float(times[c]) for c in cuts] + [float(duration)]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
