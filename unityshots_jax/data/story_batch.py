"""Fixed-shape training examples: a validated `StoryRecord` padded to the configuration, and their batches.

Padding rules (K = cfg.max_shots, F = cfg.video_frames, Fa = cfg.audio_frames, Fr = cfg.ref_audio_frames):
shots beyond k get shot_valid False, zero latents and contexts, context_mask 1 (no all-masked attention row),
n_frames F and n_audio Fa (as `make_story_inputs` pads), cut_strength 0, boundary 0 and allowed_modes T2V only;
frames beyond a record's F_max / Fa_max are zeros (n_frames / n_audio mark the valid ones); the reference voice
is cropped to its first Fr frames or zero-padded with mask 0.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from flax import struct

from unityshots_jax.data.story_record import SIGNALS, StoryRecord
from unityshots_jax.story.shot_sequence import T2V
from unityshots_jax.story.story_config import GateConfig, StoryConfig


@struct.dataclass
class StoryBatch:
    """A batch of padded stories (numpy arrays; a flax struct, so it is a pytree for `jax.device_put`).

    video_latents `[B, K, F, H, W, C]`, n_frames `[B, K]` int32, audio_latents `[B, K, Fa, Ca]`, n_audio `[B, K]`
    int32, video_context `[B, K, S, Dv]`, audio_context `[B, K, S, Da]`, context_mask `[B, K, S]` int32,
    cut_strength `[B, K]` τ float32, boundary `[B, K]` b̄ float32, allowed_modes `[B, K, 3]` bool (T2V, I2V, R2V),
    shot_valid `[B, K]` bool, ref_image `[B, R, H, W, C]`, has_ref_image `[B]` bool, ref_audio `[B, Fr, Ca]`,
    ref_audio_mask `[B, Fr]` float32. Latents, contexts and references are in the loader's `latent_dtype`.
    `pad_story` returns one example: the same fields without the leading B axis.
    """

    video_latents: np.ndarray
    n_frames: np.ndarray
    audio_latents: np.ndarray
    n_audio: np.ndarray
    video_context: np.ndarray
    audio_context: np.ndarray
    context_mask: np.ndarray
    cut_strength: np.ndarray
    boundary: np.ndarray
    allowed_modes: np.ndarray
    shot_valid: np.ndarray
    ref_image: np.ndarray
    has_ref_image: np.ndarray
    ref_audio: np.ndarray
    ref_audio_mask: np.ndarray


def derive_boundary(record: StoryRecord, tau: np.ndarray, gate: GateConfig) -> np.ndarray:
    """b̄ `[k]` float32: the record's `boundary` if given; else Eq. 2, clamp(τ·(α·s_vis + β·s_aud + γ·s_beat), 0, 1),
    with a missing signal counting as 1 (so with no signals at all, clamp(τ·(α + β + γ), 0, 1)).

    Same formula as `unityshots_jax.story.boundary_gate.boundary_score`, computed in numpy so the input
    pipeline never dispatches to an accelerator.
    """
    if record.boundary is not None:
        return np.asarray(record.boundary, np.float32)
    one = np.ones_like(tau, np.float32)
    s = {n: one if getattr(record, n) is None else np.asarray(getattr(record, n), np.float32) for n in SIGNALS}
    alpha, beta, gamma = (np.float32(w) for w in (gate.alpha, gate.beta, gate.gamma))
    b = tau * (alpha * s["s_vis"] + beta * s["s_aud"] + gamma * s["s_beat"])
    return np.clip(b, 0.0, 1.0).astype(np.float32)


def _pad_to(arr: np.ndarray, shape: tuple[int, ...], dtype, fill=0) -> np.ndarray:
    """`arr` (each dim ≤ shape's) cast to dtype and placed at the origin of a `fill`-filled array of `shape`."""
    out = np.full(shape, fill, dtype)
    out[tuple(slice(0, d) for d in arr.shape)] = arr
    return out


def pad_story(record: StoryRecord, cfg: StoryConfig, *, latent_dtype=np.float32) -> StoryBatch:
    """One validated record → one fixed-shape example (a `StoryBatch` without the batch axis)."""
    k, K = record.num_shots, cfg.max_shots
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    tau = np.asarray(cfg.cut_priors, np.float32)[np.asarray(record.cut_type, np.int64)]
    modes = np.zeros((K, 3), bool)
    modes[:, T2V] = True
    modes[:k] = record.allowed_modes
    s = cfg.text_tokens
    ref_audio = np.asarray(record.ref_audio)[: cfg.ref_audio_frames]
    ref_mask = np.asarray(record.ref_audio_mask)[: cfg.ref_audio_frames]
    return StoryBatch(
        video_latents=_pad_to(np.asarray(record.video_latents), (K, cfg.video_frames, *frame), latent_dtype),
        n_frames=_pad_to(np.asarray(record.n_frames), (K,), np.int32, cfg.video_frames),
        audio_latents=_pad_to(np.asarray(record.audio_latents), (K, cfg.audio_frames, cfg.audio_channels), latent_dtype),
        n_audio=_pad_to(np.asarray(record.n_audio), (K,), np.int32, cfg.audio_frames),
        video_context=_pad_to(np.asarray(record.video_context), (K, s, record.video_context.shape[-1]), latent_dtype),
        audio_context=_pad_to(np.asarray(record.audio_context), (K, s, record.audio_context.shape[-1]), latent_dtype),
        context_mask=_pad_to(np.asarray(record.context_mask), (K, s), np.int32, 1),
        cut_strength=_pad_to(tau, (K,), np.float32),
        boundary=_pad_to(derive_boundary(record, tau, cfg.gate), (K,), np.float32),
        allowed_modes=modes,
        shot_valid=_pad_to(np.ones((k,), bool), (K,), bool),
        ref_image=np.asarray(record.ref_image).astype(latent_dtype),
        has_ref_image=np.asarray(bool(record.has_ref_image)),
        ref_audio=_pad_to(ref_audio, (cfg.ref_audio_frames, cfg.audio_channels), latent_dtype),
        ref_audio_mask=_pad_to(ref_mask, (cfg.ref_audio_frames,), np.float32),
    )


def stack_examples(examples: Sequence[StoryBatch]) -> StoryBatch:
    """Examples from `pad_story` → a `StoryBatch` with a leading batch axis (grain's `Batch.batch_fn`)."""
    fields = StoryBatch.__dataclass_fields__
    return StoryBatch(**{name: np.stack([getattr(e, name) for e in examples]) for name in fields})
