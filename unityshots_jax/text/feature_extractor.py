"""FeatureExtractorV2 of ltx-core 1.0.0 (LTX-2.3): every Gemma hidden state → the video and audio features.

    h      = hidden states stacked layer-minor: flat index d·L + l over (hidden d, state l)
    normed = h · rsqrt(mean_d(h²) + 1e-6)        per token and per state, in the activation dtype (bf16 in pipelines)
    normed = where(mask, normed, 0)
    video  = video_aggregate_embed(normed · √(Dv / D))      Linear D·L → Dv with bias
    audio  = audio_aggregate_embed(normed · √(Da / D))      Linear D·L → Da with bias

The flatten is never materialised: the kernel `[D·L, out]` is viewed as `[D, L, out]` and contracted with the
states in their `[L, batch, tokens, D]` layout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.layers import dense

RMS_EPS = 1e-6


def per_token_rms(states: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """states `[layers, batch, tokens, dim]`, mask `[batch, tokens]` → RMS-normed per (state, token), padding
    rows zeroed; same shape and dtype as `states`."""
    var = jnp.mean(jnp.square(states), axis=-1, keepdims=True)
    normed = states * jax.lax.rsqrt(var + jnp.asarray(RMS_EPS, states.dtype))
    return jnp.where(mask[None, :, :, None] > 0, normed, jnp.zeros((), states.dtype))


class FeatureExtractorV2(nnx.Module):
    """The two aggregate projections (`text_embedding_projection.{video,audio}_aggregate_embed` in the file)."""

    def __init__(self, dim: int, num_states: int, video_dim: int, audio_dim: int, rngs: nnx.Rngs):
        self.dim, self.num_states = dim, num_states
        self.video_aggregate_embed = dense(rngs, dim * num_states, video_dim, ("caption", "embed"))
        self.audio_aggregate_embed = dense(rngs, dim * num_states, audio_dim, ("caption", "embed"))

    def _project(self, layer: nnx.Linear, normed: jnp.ndarray) -> jnp.ndarray:
        out = layer.kernel.shape[-1]
        kernel = layer.kernel[...].astype(normed.dtype).reshape(self.dim, self.num_states, out)
        x = normed * math.sqrt(out / self.dim)
        y = jnp.einsum("lbtd,dlo->bto", x, kernel, preferred_element_type=jnp.float32)
        return (y + layer.bias[...].astype(jnp.float32)).astype(normed.dtype)

    def __call__(self, states: jnp.ndarray, mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """states `[num_states, batch, tokens, dim]`, mask `[batch, tokens]` → (video `[batch, tokens, Dv]`,
        audio `[batch, tokens, Da]`) in the states' dtype."""
        if states.shape[0] != self.num_states or states.shape[-1] != self.dim:
            raise ValueError(f"feature extractor: expected [{self.num_states}, batch, tokens, {self.dim}] hidden "
                             f"states, got {list(states.shape)}")
        normed = per_token_rms(states, mask)
        return self._project(self.video_aggregate_embed, normed), self._project(self.audio_aggregate_embed, normed)
