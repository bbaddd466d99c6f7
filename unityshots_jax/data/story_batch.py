"""Fixed-shape training examples: a validated `StoryRecord` padded to the configuration, their batches, and the
batch in the shot-major layout the loss scans (`TrainingStory`).

Padding rules (K = cfg.max_shots, F = cfg.video_frames, Fa = cfg.audio_frames, Fr = cfg.ref_audio_frames):
shots beyond k as `unityshots_jax.story.story_inputs.shot_padding` says (the rule generation inputs are padded
by: shot_valid False, zero latents and contexts, context_mask 1, n_frames F, n_audio Fa, allowed_modes T2V only);
frames beyond a record's F_max / Fa_max are zeros (n_frames / n_audio mark the valid ones); the reference voice
is cropped to its first Fr frames or zero-padded with mask 0.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

from unityshots_jax.data.story_record import StoryRecord
from unityshots_jax.story.boundary_gate import SIGNALS, boundary_from_signals
from unityshots_jax.story.shot_sequence import References, ShotConditioning
from unityshots_jax.story.story_config import GateConfig, StoryConfig
from unityshots_jax.story.story_inputs import pad_shots, shots_first


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
    """b̄ `[k]` float32: the record's `boundary` if given; else Eq. 2 from its signals
    (`unityshots_jax.story.boundary_gate.boundary_from_signals`: a missing signal counts as 1), in numpy."""
    if record.boundary is not None:
        return np.asarray(record.boundary, np.float32)
    signals = {n: None if getattr(record, n) is None else np.asarray(getattr(record, n), np.float32) for n in SIGNALS}
    return boundary_from_signals(np.asarray(tau, np.float32), signals, gate).astype(np.float32)


def _pad_to(arr: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """`arr` (each dim ≤ shape's) cast to dtype and placed at the origin of a zero array of `shape`."""
    out = np.zeros(shape, dtype)
    out[tuple(slice(0, d) for d in arr.shape)] = arr
    return out


def pad_story(record: StoryRecord, cfg: StoryConfig, *, latent_dtype=np.float32) -> StoryBatch:
    """One validated record → one fixed-shape example (a `StoryBatch` without the batch axis)."""
    k = record.num_shots
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    tau = np.asarray(cfg.cut_priors, np.float32)[np.asarray(record.cut_type, np.int64)]
    per_shot = {  # k shots, frames padded to the configuration
        "video_latents": _pad_to(np.asarray(record.video_latents), (k, cfg.video_frames, *frame), latent_dtype),
        "n_frames": np.asarray(record.n_frames, np.int32),
        "audio_latents": _pad_to(np.asarray(record.audio_latents), (k, cfg.audio_frames, cfg.audio_channels), latent_dtype),
        "n_audio": np.asarray(record.n_audio, np.int32),
        "video_context": np.asarray(record.video_context).astype(latent_dtype),
        "audio_context": np.asarray(record.audio_context).astype(latent_dtype),
        "context_mask": np.asarray(record.context_mask, np.int32),
        "cut_strength": tau,
        "boundary": derive_boundary(record, tau, cfg.gate),
        "allowed_modes": np.asarray(record.allowed_modes, bool),
        "shot_valid": np.ones((k,), bool),
    }
    ref_audio = np.asarray(record.ref_audio)[: cfg.ref_audio_frames]
    ref_mask = np.asarray(record.ref_audio_mask)[: cfg.ref_audio_frames]
    return StoryBatch(
        **{name: pad_shots(name, arr, cfg) for name, arr in per_shot.items()},
        ref_image=np.asarray(record.ref_image).astype(latent_dtype),
        has_ref_image=np.asarray(bool(record.has_ref_image)),
        ref_audio=_pad_to(ref_audio, (cfg.ref_audio_frames, cfg.audio_channels), latent_dtype),
        ref_audio_mask=_pad_to(ref_mask, (cfg.ref_audio_frames,), np.float32),
    )


def stack_examples(examples: Sequence[StoryBatch]) -> StoryBatch:
    """Examples from `pad_story` → a `StoryBatch` with a leading batch axis (grain's `Batch.batch_fn`)."""
    fields = StoryBatch.__dataclass_fields__
    return StoryBatch(**{name: np.stack([getattr(e, name) for e in examples]) for name in fields})


@struct.dataclass
class ShotTargets:
    """The `xs` of the loss's scan over shots: every leaf shot-major `[K, B, …]`, `index` `[K]`.

    cond: the shot's `ShotConditioning` (mode: T2V, a placeholder — the loss samples the mode among
    `allowed_modes` `[K, B, 3]`; first_frame: the ground-truth frame 0, the I2V condition); video `[K, B, F, H, W, C]`
    and audio `[K, B, Fa, Ca]`: the ground-truth latents (float32)."""

    index: jnp.ndarray
    cond: ShotConditioning
    video: jnp.ndarray
    audio: jnp.ndarray
    allowed_modes: jnp.ndarray


@struct.dataclass
class TrainingStory:
    """A training batch as the loss consumes it: the shots (`ShotTargets`) and the story's references."""

    shots: ShotTargets
    refs: References


def training_story(batch: StoryBatch, dtype) -> TrainingStory:
    """The one conversion of a `StoryBatch` (`[B, K, …]`, numpy or device arrays) to the loss's shot-major pytree;
    contexts in the compute `dtype`, latents float32. Traceable (runs inside the jitted step)."""
    x = shots_first(dict(
        video=batch.video_latents, audio=batch.audio_latents, video_context=batch.video_context,
        audio_context=batch.audio_context, context_mask=batch.context_mask, cut_strength=batch.cut_strength,
        boundary=batch.boundary, allowed_modes=batch.allowed_modes, n_frames=batch.n_frames, n_audio=batch.n_audio,
        valid=batch.shot_valid,
    ))  # fmt: skip
    video = x["video"].astype(jnp.float32)
    cond = ShotConditioning(
        video_context=x["video_context"].astype(dtype), audio_context=x["audio_context"].astype(dtype),
        context_mask=x["context_mask"], mode=jnp.zeros(x["valid"].shape, jnp.int32), first_frame=video[:, :, 0],
        n_frames=x["n_frames"].astype(jnp.int32), n_audio=x["n_audio"].astype(jnp.int32),
        cut_strength=x["cut_strength"].astype(jnp.float32), boundary=x["boundary"].astype(jnp.float32),
        valid=x["valid"].astype(bool),
    )  # fmt: skip
    shots = ShotTargets(jnp.arange(video.shape[0]), cond, video, x["audio"].astype(jnp.float32), x["allowed_modes"])
    refs = References(jnp.asarray(batch.ref_image), jnp.asarray(batch.has_ref_image).astype(jnp.float32),
                      jnp.asarray(batch.ref_audio), jnp.asarray(batch.ref_audio_mask))
    return TrainingStory(shots, refs)
