"""Boundary-aware gate: boundary score, rule gate coefficients, LTM write weight, content-aware refinement ρ."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.story.cut_prior import interpolation_weights
from unityshots_jax.story.story_config import GateConfig


SIGNALS = ("s_vis", "s_aud", "s_beat")


def boundary_score(tau, s_vis, s_aud, s_beat, gate: GateConfig):
    """b̄ = clamp(τ·(α·s_vis + β·s_aud + γ·s_beat), 0, 1) (paper Eq. 2); all arrays `[batch]` (or broadcastable).

    The only implementation of Eq. 2: numpy float32 in → numpy out (the input pipeline never dispatches to an
    accelerator), jax in → jax out."""
    b = tau * (gate.alpha * s_vis + gate.beta * s_aud + gate.gamma * s_beat)
    return b.clip(0.0, 1.0)


def boundary_from_signals(tau, signals: dict, gate: GateConfig):
    """`boundary_score` with the signals of `signals` ({"s_vis", "s_aud", "s_beat"} → array or None); a missing
    signal counts as present (1), so with none at all b̄ = clamp(τ·(α + β + γ), 0, 1). tau, signals `[…]` float32."""
    unknown = sorted(set(signals) - set(SIGNALS))
    if unknown:
        raise ValueError(f"boundary signals: unknown {unknown[0]!r}; expected {', '.join(SIGNALS)}")
    one = np.ones_like(tau) if isinstance(tau, np.ndarray) else jnp.ones_like(tau)
    s = {n: one if signals.get(n) is None else signals[n] for n in SIGNALS}
    return boundary_score(tau, s["s_vis"], s["s_aud"], s["s_beat"], gate)


def gate_coefficients(b: jnp.ndarray, gate: GateConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(g_ltm, rule g_stm) for boundary strengths b `[batch]` in [0, 1]: 0.1 + 0.6b and 0.3 + 0.7b by default."""
    return gate.ltm[0] + gate.ltm[1] * b, gate.stm[0] + gate.stm[1] * b


def ltm_write_weight(b: jnp.ndarray, gate: GateConfig) -> jnp.ndarray:
    """z = z_max·clamp(b, 0, 1): how much of the new tail enters the LTM at this boundary (Eq. 3)."""
    return gate.z_max * jnp.clip(b, 0.0, 1.0)


class StmRefinement(nnx.Module):
    """ρ = σ(MLP([pool(previous shot), pool(noisy current shot), e_cut])): a 2-layer MLP, < 50 K parameters.

    Initialised with a zero output layer and bias `rho_init_bias`, so ρ starts near 1 (the rule gate).
    """

    def __init__(self, channels: int, gate: GateConfig, priors: tuple[float, float, float], rngs: nnx.Rngs):
        self.gate, self.priors = gate, priors
        self.cut_table = nnx.Param(0.02 * jax.random.normal(rngs.params(), (3, gate.rho_cut_dim)), sharding_names=(None, None))
        self.hidden = nnx.Linear(2 * channels + gate.rho_cut_dim, gate.rho_hidden, rngs=rngs)
        self.out = nnx.Linear(
            gate.rho_hidden,
            1,
            kernel_init=nnx.initializers.zeros_init(),
            bias_init=nnx.initializers.constant(gate.rho_init_bias),
            rngs=rngs,
        )

    def __call__(self, prev_pool: jnp.ndarray, noisy_pool: jnp.ndarray, strength: jnp.ndarray) -> jnp.ndarray:
        """prev_pool, noisy_pool `[batch, channels]`, strength `[batch]` → ρ `[batch]` in (0, 1)."""
        e_cut = interpolation_weights(strength, self.priors) @ self.cut_table[...]
        h = jnp.concatenate([prev_pool, noisy_pool, e_cut], axis=-1).astype(jnp.float32)
        rho = jax.nn.sigmoid(self.out(jax.nn.gelu(self.hidden(h))))[:, 0]
        return jnp.clip(rho, 0.5, 1.0) if self.gate.rho_clamp else rho
