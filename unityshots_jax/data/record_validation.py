"""Checking a `StoryRecord` against a `StoryConfig`: every shape, dtype, range and cross-field rule.

The first problem found raises `RecordError` naming the record and the field. The rules (k shots, F_max / Fa_max
the record's longest shot, S = cfg.text_tokens):

- 1 ≤ k ≤ cfg.max_shots; F_max ≤ cfg.video_frames; Fa_max ≤ cfg.audio_frames; H, W, C, Ca, R, S and the context
  dims equal the configuration's; Fr is free (the loader crops / pads it to cfg.ref_audio_frames);
- latents and contexts are float16 / bfloat16 / float32 and finite; counts and labels are integers;
- n_frames in [cfg.stm_frames, F_max]; n_audio in [1, Fa_max]; context_mask 0/1 with ≥ 1 token per shot;
- cut_type[0] = FIRST, later shots CONTINUE or HARD; boundary and signals in [0, 1];
- allowed_modes allows ≥ 1 mode per shot, and R2V only if has_ref_image; ref_audio_mask 0/1.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD, OPTIONAL_FIELDS, RecordError, StoryRecord, record_label
from unityshots_jax.story.shot_sequence import R2V
from unityshots_jax.story.story_config import StoryConfig

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32))


class _Checker:
    def __init__(self, record: StoryRecord, source: str | None):
        self.record = record
        self.label = record_label(getattr(record, "story_id", None), source)

    def fail(self, field: str, message: str):
        raise RecordError(self.label, field, message)

    def array(self, field: str, shape: tuple, kind: str) -> np.ndarray:
        """The field as an array of `shape` (None = any size) and kind "float" / "int" / "mask" / "bool"."""
        value = getattr(self.record, field)
        if value is None or isinstance(value, (str, bytes)):
            self.fail(field, f"missing or not an array ({type(value).__name__})")
        arr = np.asarray(value)
        if arr.ndim != len(shape) or any(e is not None and d != e for d, e in zip(arr.shape, shape)):
            want = ["*" if e is None else e for e in shape]
            self.fail(field, f"expected shape {want}, got {list(arr.shape)}")
        dt = arr.dtype
        ok = {
            "float": dt in FLOAT_DTYPES,
            "int": dt.kind in "iu",
            "mask": dt.kind in "iub" or dt in FLOAT_DTYPES,
            "bool": dt == np.bool_,
        }[kind]
        if not ok:
            self.fail(field, f"dtype {dt} is not allowed here ({kind})")
        if dt in FLOAT_DTYPES and arr.size and not np.isfinite(arr).all():
            self.fail(field, "contains NaN or infinity")
        return arr

    def within(self, field: str, arr: np.ndarray, lo, hi) -> None:
        if arr.size and (arr.min() < lo or arr.max() > hi):
            self.fail(field, f"values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")

    def binary(self, field: str, arr: np.ndarray) -> None:
        if not np.isin(arr.astype(np.float32), (0.0, 1.0)).all():
            self.fail(field, "values must be 0 or 1")


def validate_record(
    record: StoryRecord, cfg: StoryConfig, video_context_dim: int, audio_context_dim: int, *, source: str | None = None
) -> None:
    """Raise `RecordError` (naming the record and field) unless `record` fits `cfg` and the context dims.

    source: where the record came from, added to the record's name in errors.
    """
    c = _Checker(record, source)
    if not isinstance(record, StoryRecord):
        c.fail("record", f"expected a StoryRecord, got {type(record).__name__}")
    if not isinstance(record.story_id, str) or not record.story_id:
        c.fail("story_id", f"must be a non-empty string, got {record.story_id!r}")
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    video = c.array("video_latents", (None, None, *frame), "float")
    k, f_max = video.shape[:2]
    if not 1 <= k <= cfg.max_shots:
        c.fail("video_latents", f"{k} shots; the configuration allows 1 to {cfg.max_shots}")
    if not cfg.stm_frames <= f_max <= cfg.video_frames:
        c.fail("video_latents", f"{f_max} latent frames; the configuration allows {cfg.stm_frames} to {cfg.video_frames}")
    n_frames = c.array("n_frames", (k,), "int")
    c.within("n_frames", n_frames, cfg.stm_frames, f_max)
    audio = c.array("audio_latents", (k, None, cfg.audio_channels), "float")
    fa_max = audio.shape[1]
    if not 1 <= fa_max <= cfg.audio_frames:
        c.fail("audio_latents", f"{fa_max} audio latent frames; the configuration allows 1 to {cfg.audio_frames}")
    c.within("n_audio", c.array("n_audio", (k,), "int"), 1, fa_max)
    c.array("video_context", (k, cfg.text_tokens, video_context_dim), "float")
    c.array("audio_context", (k, cfg.text_tokens, audio_context_dim), "float")
    mask = c.array("context_mask", (k, cfg.text_tokens), "mask")
    c.binary("context_mask", mask)
    if not (mask != 0).any(axis=1).all():
        c.fail("context_mask", "every shot needs at least one unmasked text token")
    cut = c.array("cut_type", (k,), "int")
    if cut[0] != FIRST:
        c.fail("cut_type", f"shot 0 must be FIRST ({FIRST}), got {cut[0]}")
    if not np.isin(cut[1:], (CONTINUE, HARD)).all():
        c.fail("cut_type", f"shots after the first must be CONTINUE ({CONTINUE}) or HARD ({HARD}), got {cut.tolist()}")
    for name in OPTIONAL_FIELDS:
        if getattr(record, name) is not None:
            c.within(name, c.array(name, (k,), "float").astype(np.float32), 0.0, 1.0)
    if not isinstance(record.has_ref_image, (bool, np.bool_)):
        c.fail("has_ref_image", f"must be a bool, got {type(record.has_ref_image).__name__}")
    c.array("ref_image", (cfg.ref_image_frames, *frame), "float")
    modes = c.array("allowed_modes", (k, 3), "bool")
    if not modes.any(axis=1).all():
        c.fail("allowed_modes", f"shot {int(np.argmin(modes.any(axis=1)))} allows no mode")
    if modes[:, R2V].any() and not record.has_ref_image:
        c.fail("allowed_modes", "R2V is allowed but the story has no reference image (has_ref_image is False)")
    ref_audio = c.array("ref_audio", (None, cfg.audio_channels), "float")
    c.binary("ref_audio_mask", c.array("ref_audio_mask", (ref_audio.shape[0],), "mask"))
