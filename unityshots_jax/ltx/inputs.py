"""Inputs of the transformer: one `StreamInput` per modality and per-block guidance `Perturbations`."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import struct

PERTURBATION_TYPES = ("skip_video_self_attn", "skip_audio_self_attn", "skip_a2v_cross_attn", "skip_v2a_cross_attn")


@struct.dataclass
class StreamInput:
    """One modality's tokens and conditioning (ltx-core `Modality`).

    latent:         `[batch, tokens, in_channels]` patchified latent tokens.
    sigma:          `[batch]` the step's noise level (prompt AdaLN and the other stream's A↔V AdaLN).
    timesteps:      `[batch, tokens]` per-token σ·denoise_mask (0 for clean conditioning tokens), or `[batch, 1]`.
    positions:      `[batch, n_axes, tokens, 2]` [start, end) bounds; video (seconds, px, px), audio (seconds).
    context:        `[batch, text_tokens, context_dim]` text embeddings.
    context_mask:   `[batch, text_tokens]` 1 = attend, 0 = padding; None attends to all.
    attention_mask: `[batch, tokens, tokens]` in [0, 1] self-attention strengths; None = full attention.
    token_mask:     `[batch, tokens]` 1 = real token, 0 = padding (our extension, for fixed-shape batches): padding
                    is never attended to — not by this stream's self-attention, nor by the other stream's A↔V
                    attention. None = every token is real (ltx-core's behaviour).
    timestep_offset: `[batch, dim]` added to the embedded timestep before the per-block AdaLN projections and the
                    output head (our extension: the story model's cut-type embedding). None = nothing added.
    """

    latent: jnp.ndarray
    sigma: jnp.ndarray
    timesteps: jnp.ndarray
    positions: jnp.ndarray
    context: jnp.ndarray
    context_mask: jnp.ndarray | None = None
    attention_mask: jnp.ndarray | None = None
    token_mask: jnp.ndarray | None = None
    timestep_offset: jnp.ndarray | None = None


@struct.dataclass
class Perturbations:
    """Per-block, per-sample guidance switches, each `[num_layers, batch]` with 1.0 = perturbed.

    skip_video_self_attn / skip_audio_self_attn: self-attention replaced by its value projection (STG).
    skip_a2v_cross_attn / skip_v2a_cross_attn: that audio↔video residual dropped (modality isolation).
    """

    skip_video_self_attn: jnp.ndarray
    skip_audio_self_attn: jnp.ndarray
    skip_a2v_cross_attn: jnp.ndarray
    skip_v2a_cross_attn: jnp.ndarray

    @classmethod
    def none(cls, num_layers: int, batch: int) -> "Perturbations":
        zeros = jnp.zeros((num_layers, batch), jnp.float32)
        return cls(zeros, zeros, zeros, zeros)

    @classmethod
    def from_spec(
        cls, spec: Sequence[Sequence[tuple[str, Sequence[int] | None]]], num_layers: int
    ) -> "Perturbations":
        """From a per-sample list of `(type, blocks or None for all)` pairs, as ltx-core's perturbation configs."""
        masks = {name: np.zeros((num_layers, len(spec)), np.float32) for name in PERTURBATION_TYPES}
        for sample, items in enumerate(spec):
            for kind, blocks in items:
                if kind not in masks:
                    raise ValueError(f"perturbation type {kind!r}: expected one of {PERTURBATION_TYPES}")
                for block in range(num_layers) if blocks is None else blocks:
                    if not 0 <= block < num_layers:
                        raise ValueError(f"perturbation {kind}: block {block} outside 0..{num_layers - 1}")
                    masks[kind][block, sample] = 1.0
        return cls(*(jnp.asarray(masks[name]) for name in PERTURBATION_TYPES))
