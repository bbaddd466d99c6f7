"""Training noise levels: the LTX trainer's stretched, shifted logit-normal distribution (default) or uniform.

σ ~ sigmoid(N(μ, s)) with μ growing linearly with the token count (0.95 at 1024 tokens → 2.05 at 4096 and above,
the same shift the LTX2 scheduler uses), stretched so that its 0.5th–99.9th percentiles span [0, 1], reflected
at ε near 0, and replaced by U(ε, 1) with probability 10 % (so no level is starved at large token counts).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import expit

from unityshots_jax.ltx.sampling import MAX_SHIFT_TOKENS
from unityshots_jax.ltx.sampling import token_shift as sampler_shift

_P999, _P005 = 3.0902, -2.5758  # standard-normal 99.9th and 0.5th percentiles


def token_shift(tokens: int) -> float:
    """μ for `tokens` tokens: the sampler's shift (`ltx.sampling.token_shift`) with `tokens` capped at 4096."""
    return sampler_shift(min(tokens, MAX_SHIFT_TOKENS))


def shifted_logit_normal(key: jax.Array, shape: tuple[int, ...], tokens: int, *, std: float = 1.0, eps: float = 1e-3, uniform_prob: float = 0.1) -> jnp.ndarray:
    """σ samples `shape` in (0, 1] for a sequence of `tokens` tokens."""
    k1, k2, k3 = jax.random.split(key, 3)
    mu = token_shift(tokens)
    x = expit(jax.random.normal(k1, shape) * std + mu)
    lo, hi = expit(mu + _P005 * std), expit(mu + _P999 * std)
    stretched = (x - lo) / (hi - lo)
    stretched = jnp.clip(jnp.where(stretched >= eps, stretched, 2 * eps - stretched), 0.0, 1.0)
    uniform = (1 - eps) * jax.random.uniform(k2, shape) + eps
    return jnp.where(jax.random.uniform(k3, shape) > uniform_prob, stretched, uniform)


def sample_sigmas(key: jax.Array, shape: tuple[int, ...], tokens: int, kind: str = "shifted_logit_normal") -> jnp.ndarray:
    if kind == "shifted_logit_normal":
        return shifted_logit_normal(key, shape, tokens)
    if kind == "uniform":
        return jax.random.uniform(key, shape)
    raise ValueError(f"timestep_sampling: unknown kind {kind!r} (shifted_logit_normal or uniform)")
