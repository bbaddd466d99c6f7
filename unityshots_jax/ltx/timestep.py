"""Sinusoidal timestep embedding and AdaLN-single (PixArt-α style) of LTX-2."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.ltx.layers import dense

TIMESTEP_CHANNELS = 256


@functools.lru_cache(maxsize=8)
def timestep_frequencies(half: int, max_period: float) -> np.ndarray:
    """f_k = exp(−ln(P)·k / half), k < half, as float32: the exponent rounded through float32 exactly as ltx-core
    forms it, then the correctly rounded float32 of its exp (computed in float64).

    torch's own float32 `exp` is not correctly rounded and differs between machines (a few entries one ulp
    apart); parity is judged against the reference run in float64 (`parity_criterion`), so we match no
    machine's table.
    """
    exponent = (np.float32(-math.log(max_period)) * np.arange(half, dtype=np.float32)).astype(np.float32)
    return np.exp((exponent / np.float32(half)).astype(np.float64)).astype(np.float32)


def timestep_embedding(t: jnp.ndarray, channels: int = TIMESTEP_CHANNELS, max_period: float = 10000.0) -> jnp.ndarray:
    """`[n]` timesteps (already ×1000) → `[n, channels]` float32 `[cos(t·f), sin(t·f)]`, f_k = P^(−k/half)."""
    half = channels // 2
    freqs = jnp.asarray(timestep_frequencies(half, float(max_period)))
    args = t.astype(jnp.float32)[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class AdaLNSingle(nnx.Module):
    """timestep → (SiLU-MLP embedding `[n, dim]`, its projection `[n, coefficient·dim]`)."""

    def __init__(self, dim: int, coefficient: int, rngs: nnx.Rngs):
        self.coefficient = coefficient
        self.linear_1 = dense(rngs, TIMESTEP_CHANNELS, dim, (None, "embed"))
        self.linear_2 = dense(rngs, dim, dim, ("embed", "mlp"))
        self.linear = dense(rngs, dim, coefficient * dim, ("embed", "mlp"))

    def embed(self, t: jnp.ndarray, dtype: jnp.dtype) -> jnp.ndarray:
        """t: `[n]` scaled timesteps → embedding `[n, dim]` in `dtype`."""
        emb = timestep_embedding(t).astype(dtype)
        return self.linear_2(jax.nn.silu(self.linear_1(emb)))

    def project(self, emb: jnp.ndarray) -> jnp.ndarray:
        """embedding `[..., dim]` → modulation projection `[..., coefficient·dim]`."""
        return self.linear(jax.nn.silu(emb))

    def __call__(self, t: jnp.ndarray, dtype: jnp.dtype) -> tuple[jnp.ndarray, jnp.ndarray]:
        """t: `[n]` scaled timesteps → (projection `[n, coefficient·dim]`, embedding `[n, dim]`) in `dtype`."""
        emb = self.embed(t, dtype)
        return self.project(emb), emb
