"""The cut-type prior: FIRST / CONTINUE / HARD, their numeric priors τ, and the learned embedding.

At inference the prior is a knob: a cut type per boundary, or a continuous strength x ∈ [0, 1]. The embedding
of x interpolates linearly between the class embeddings at their priors (x = 0 → FIRST, 0.4 → CONTINUE,
1 → HARD), so a class and its prior give the same embedding and strengths in between blend them.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

CUT_TYPES = ("FIRST", "CONTINUE", "HARD")
# Transitions other than the three classes map onto them (docs/design.md, "Cut types").
CUT_ALIASES = {
    "FIRST": "FIRST", "FIRST_SHOT": "FIRST", "FIRST-SHOT": "FIRST", "OPENING": "FIRST",
    "CONTINUE": "CONTINUE", "CONTINUE_CUT": "CONTINUE", "CONTINUE-CUT": "CONTINUE", "MATCH_CUT": "CONTINUE",
    "DISSOLVE": "CONTINUE", "CROSSFADE": "CONTINUE", "JUMP_CUT": "CONTINUE",
    "HARD": "HARD", "HARD_CUT": "HARD", "HARD-CUT": "HARD", "CUT": "HARD", "SMASH_CUT": "HARD",
    "FADE": "HARD", "FADE_TO_BLACK": "HARD", "WIPE": "HARD",
}


def canonical_cut(name: str) -> str:
    """The class ("FIRST", "CONTINUE", "HARD") of a transition name; ValueError naming it if unknown."""
    key = str(name).strip().upper().replace(" ", "_")
    if key not in CUT_ALIASES:
        raise ValueError(f"cut type {name!r}: unknown; expected one of {sorted(CUT_ALIASES)}")
    return CUT_ALIASES[key]


def cut_strength(name: str, priors: tuple[float, float, float] = (0.0, 0.4, 1.0)) -> float:
    """The numeric prior τ of a transition name."""
    return float(priors[CUT_TYPES.index(canonical_cut(name))])


def interpolation_weights(strength: jnp.ndarray, priors: tuple[float, float, float]) -> jnp.ndarray:
    """strength `[batch]` in [0, 1] → `[batch, 3]` piecewise-linear weights over the classes (rows sum to 1)."""
    x = jnp.clip(strength.astype(jnp.float32), priors[0], priors[2])
    lo, mid, hi = priors
    w_first = jnp.clip((mid - x) / (mid - lo), 0.0, 1.0)
    w_hard = jnp.clip((x - mid) / (hi - mid), 0.0, 1.0)
    return jnp.stack([w_first, 1.0 - w_first - w_hard, w_hard], axis=-1)


class CutEmbedding(nnx.Module):
    """A learned `[3, dim]` table (zero-initialised: a converted LTX checkpoint is undisturbed)."""

    def __init__(self, dim: int, priors: tuple[float, float, float]):
        self.priors = priors
        self.table = nnx.Param(jnp.zeros((3, dim), jnp.float32), sharding_names=(None, "embed"))

    def __call__(self, strength: jnp.ndarray) -> jnp.ndarray:
        """strength `[batch]` → embedding `[batch, dim]`."""
        return interpolation_weights(strength, self.priors) @ self.table[...]
