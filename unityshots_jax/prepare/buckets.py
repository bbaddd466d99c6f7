"""Buckets: the pixel size and frame count every shot of a record is cut to, and cutting a shot to one.

A bucket is "WxHxF" as ltx-trainer writes it (`--resolution-buckets`): W and H multiples of 32, F = 8k + 1 frames.
Part 1 prepares one bucket per data set — the story model's grid: W × H = 32 × its latent (width, height) and F the
frames of its longest shot, 8·(video_frames − 1) + 1 — because a record holds one latent grid for all its shots. A
shot is resampled to the codec's frame rate (the frame shown at each output time), cut to the longest 8k + 1 frames
that fit both the shot and the bucket (its first frames: shots are not stretched), resized to cover W × H with
half-pixel bilinear interpolation and centre-cropped, as `media/image_conditioning.py` prepares images.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.story.story_config import StoryConfig

_PATTERN = re.compile(r"(\d+)x(\d+)x(\d+)")


@dataclasses.dataclass(frozen=True)
class Bucket:
    """width × height px, at most `frames` frames per shot."""

    width: int
    height: int
    frames: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}x{self.frames}"


def parse_bucket(text: str) -> Bucket:
    """"WxHxF" → Bucket; ValueError naming the text otherwise."""
    match = _PATTERN.fullmatch(str(text).strip().lower())
    if not match:
        raise ValueError(f"bucket {text!r}: expected WIDTHxHEIGHTxFRAMES, e.g. 1376x768x121")
    return Bucket(*(int(g) for g in match.groups()))


def model_bucket(cfg: StoryConfig) -> Bucket:
    """The bucket of a story model's grid (see module doc)."""
    s, t = cfg.spatial_scale, cfg.temporal_scale
    return Bucket(cfg.width * s, cfg.height * s, t * (cfg.video_frames - 1) + 1)


def bucket_problem(bucket: Bucket, codecs: CodecBundle, cfg: StoryConfig) -> str | None:
    """Why the codecs cannot produce `bucket` for a record of `cfg`, or None when they can."""
    try:
        frames, h, w, _ = codecs.video.latent_shape(bucket.frames, bucket.height, bucket.width)
    except ValueError as exc:
        return f"bucket {bucket}: the video codec cannot encode it ({exc})"
    if (h, w) != (cfg.height, cfg.width):
        return (f"bucket {bucket}: encodes to a {h}×{w} latent grid; the story model's is {cfg.height}×{cfg.width} "
                f"({model_bucket(cfg).width}×{model_bucket(cfg).height} px)")
    if not cfg.stm_frames <= frames <= cfg.video_frames:
        return (f"bucket {bucket}: {frames} latent frames per shot; the story model takes {cfg.stm_frames} to "
                f"{cfg.video_frames}")
    return None


def shot_frame_indices(times: np.ndarray, start: float, end: float, fps: float, max_frames: int,
                       temporal_scale: int) -> np.ndarray:
    """Indices into a clip's frames (shown at `times` `[T]` s) for a shot [start, end) s resampled to `fps`: the
    longest temporal_scale·k + 1 ≤ max_frames output frames that fit the shot (empty if not even one), each the
    source frame shown at its output time. int64 `[n]`."""
    available = math.floor((end - start) * fps + 1e-6)
    n = min(available, max_frames)
    n = (n - 1) // temporal_scale * temporal_scale + 1 if n >= 1 else 0
    targets = start + np.arange(n, dtype=np.float64) / fps
    index = np.searchsorted(times, targets + 1e-6, side="right") - 1
    return np.clip(index, 0, len(times) - 1).astype(np.int64)


def _bilinear(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, upper weight) `[dst]` of a half-pixel-centre bilinear resize of src samples."""
    pos = np.maximum((np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5, 0.0)
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    return lo, np.minimum(lo + 1, src - 1), (pos - lo).astype(np.float32)


def resize_crop_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 `[T, H, W, 3]` → float32 `[T, height, width, 3]` in [0, 1]: scaled by max(height/H, width/W) (sizes
    rounded up) with bilinear interpolation, then the centre cut out."""
    src_h, src_w = frames.shape[1:3]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = math.ceil(src_h * scale), math.ceil(src_w * scale)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    lo, hi, t = (a[top:top + height] for a in _bilinear(src_h, new_h))
    x = frames.astype(np.float32) / np.float32(255.0)
    x = x[:, lo] * (1 - t)[None, :, None, None] + x[:, hi] * t[None, :, None, None]
    lo, hi, t = (a[left:left + width] for a in _bilinear(src_w, new_w))
    x = x[:, :, lo] * (1 - t)[None, None, :, None] + x[:, :, hi] * t[None, None, :, None]
    return np.ascontiguousarray(np.clip(x, 0.0, 1.0), np.float32)
