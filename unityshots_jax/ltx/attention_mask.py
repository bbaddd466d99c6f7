"""What an attention may look at, in the form each kernel needs, never as a dense `[T, T]` array.

Every mask the model uses is a per-example set of visible keys: the text padding of the prompt, this stream's
padding tokens, and the story sequence's per-shot token masks (padded frames, the reference image outside R2V,
empty memory strata, a dropped reference voice) — all `token_mask` / `context_mask` vectors. They travel as
`key_valid` `[batch, keys]`; XLA-style kernels turn them into a broadcastable `[batch, 1, 1, keys]` additive bias,
the splash kernel into segment ids. Only ltx-core's soft `attention_mask` (self-attention strengths per query,
unused by the story model) is a per-query bias; kernels that cannot take it (splash) refuse it.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct


@struct.dataclass
class AttentionMask:
    """key_valid: `[batch, keys]` 1 = visible, 0 = hidden; None = every key is visible.
    bias: `[batch, 1, queries or 1, keys]` additive soft mask (log of ltx-core's attention strengths), or None."""

    key_valid: jnp.ndarray | None = None
    bias: jnp.ndarray | None = None

    def additive(self, dtype) -> jnp.ndarray | None:
        """One additive bias broadcastable to `[batch, heads, queries, keys]` in `dtype`: 0 on visible keys, the
        dtype's most negative value on hidden ones (softmax weight exactly 0 unless a row hides every key, where it
        is uniform, as in ltx-core), plus `bias`; None without a mask."""
        dtype = jnp.dtype(dtype)
        low = jnp.finfo(dtype).min
        key = None
        if self.key_valid is not None:
            b, t = self.key_valid.shape
            key = jnp.where(self.key_valid.reshape(b, 1, 1, t) > 0, 0.0, low).astype(dtype)
        if self.bias is None:
            return key
        bias = self.bias.astype(dtype)
        return bias if key is None else jnp.maximum(bias + key, low)


def key_mask(valid: jnp.ndarray | None) -> AttentionMask | None:
    """`AttentionMask` hiding the keys where valid `[batch, keys]` is 0 (None → no mask)."""
    return None if valid is None else AttentionMask(key_valid=valid)
