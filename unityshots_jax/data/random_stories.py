"""Random, valid story records of a configuration's shapes (tests and smoke runs; no files needed)."""

from __future__ import annotations

import numpy as np

from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD, StoryRecord
from unityshots_jax.story.boundary_gate import SIGNALS
from unityshots_jax.story.shot_sequence import R2V
from unityshots_jax.story.story_config import StoryConfig

BOUNDARY_SOURCES = ("given", "signals", "prior")


def random_story(
    cfg: StoryConfig,
    rng: np.random.Generator,
    *,
    video_context_dim: int,
    audio_context_dim: int,
    k: int | None = None,
    dtype=np.float32,
    story_id: str | None = None,
    p_ref_image: float = 0.5,
    p_ref_audio: float = 0.5,
    boundary_source: str | None = None,
    ref_audio_frames: int | None = None,
) -> StoryRecord:
    """A random story that passes `validate_record(…, cfg, video_context_dim, audio_context_dim)`.

    k: shots (default: uniform in [min(3, max_shots), max_shots]); n_frames uniform in [stm_frames, video_frames]
    with F_max = max(n_frames) (so shorter stories exercise frame padding); n_audio likewise in [1, audio_frames].
    Cut types: shot 0 FIRST, later shots CONTINUE or HARD. allowed_modes: random, ≥ 1 per shot, R2V only with a
    reference image. A reference image is present with probability p_ref_image, a reference voice (with a random
    valid prefix in its mask) with p_ref_audio. boundary_source: "given" (a boundary array), "signals" (a random
    non-empty subset of s_vis / s_aud / s_beat) or "prior" (neither); default random.
    Latents, contexts and references are stored in `dtype`.
    """
    lo = min(3, cfg.max_shots)
    k = int(rng.integers(lo, cfg.max_shots + 1)) if k is None else int(k)
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    n_frames = rng.integers(cfg.stm_frames, cfg.video_frames + 1, size=k).astype(np.int32)
    n_audio = rng.integers(1, cfg.audio_frames + 1, size=k).astype(np.int32)
    f_max, fa_max = int(n_frames.max()), int(n_audio.max())

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype)

    mask = (rng.random((k, cfg.text_tokens)) < 0.7).astype(np.int32)
    mask[:, 0] = 1
    cut = np.concatenate([[FIRST], rng.choice([CONTINUE, HARD], size=k - 1)]).astype(np.int32)
    has_ref = bool(rng.random() < p_ref_image)
    modes = rng.random((k, 3)) < 0.6
    if not has_ref:
        modes[:, R2V] = False
    empty = ~modes.any(axis=1)
    modes[empty, rng.integers(0, 3 if has_ref else 2, size=int(empty.sum()))] = True
    fr = cfg.ref_audio_frames if ref_audio_frames is None else int(ref_audio_frames)
    ref_mask = np.zeros((fr,), np.int32)
    if fr and rng.random() < p_ref_audio:
        ref_mask[: int(rng.integers(1, fr + 1))] = 1
    source = boundary_source or BOUNDARY_SOURCES[int(rng.integers(0, len(BOUNDARY_SOURCES)))]
    if source not in BOUNDARY_SOURCES:
        raise ValueError(f"boundary_source: {source!r}, expected one of {BOUNDARY_SOURCES}")
    extra: dict[str, np.ndarray] = {}
    if source == "given":
        extra["boundary"] = (rng.random(k) * (cut != FIRST)).astype(np.float32)  # no boundary before shot 0
    elif source == "signals":
        chosen = [s for s in SIGNALS if rng.random() < 0.6] or [SIGNALS[int(rng.integers(0, 3))]]
        extra.update({s: rng.random(k).astype(np.float32) for s in chosen})
    return StoryRecord(
        story_id=story_id or f"random-{int(rng.integers(0, 2**62)):016x}",
        video_latents=normal(k, f_max, *frame),
        n_frames=n_frames,
        audio_latents=normal(k, fa_max, cfg.audio_channels),
        n_audio=n_audio,
        video_context=normal(k, cfg.text_tokens, video_context_dim),
        audio_context=normal(k, cfg.text_tokens, audio_context_dim),
        context_mask=mask,
        cut_type=cut,
        allowed_modes=modes,
        ref_image=normal(cfg.ref_image_frames, *frame) if has_ref else np.zeros((cfg.ref_image_frames, *frame), dtype),
        has_ref_image=has_ref,
        ref_audio=normal(fr, cfg.audio_channels) * ref_mask[:, None].astype(dtype),
        ref_audio_mask=ref_mask,
        **extra,
    )
