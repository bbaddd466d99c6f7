"""Multi-head attention of LTX-2: q/k RMSNorm over the full inner dim, RoPE, optional per-head output gate,
and STG value pass-through."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.attention_kernels import AttentionFn
from unityshots_jax.ltx.attention_mask import AttentionMask
from unityshots_jax.ltx.layers import dense, head_gate, rms_norm
from unityshots_jax.ltx.rope import RopeTables, apply_rope
from unityshots_jax.sharding import constrain


class Attention(nnx.Module):
    """ltx-core `Attention`: to_q/to_k/to_v/to_out with bias, q_norm/k_norm (weighted RMSNorm over heads·head_dim),
    optional `to_gate_logits` (gate = 2·sigmoid, per head, from the query-side input)."""

    def __init__(
        self,
        query_dim: int,
        context_dim: int,
        heads: int,
        head_dim: int,
        *,
        gated: bool,
        eps: float,
        rngs: nnx.Rngs,
    ):
        inner = heads * head_dim
        self.heads, self.head_dim, self.eps = heads, head_dim, eps
        self.to_q = dense(rngs, query_dim, inner, ("embed", "heads"))
        self.to_k = dense(rngs, context_dim, inner, ("embed", "heads"))
        self.to_v = dense(rngs, context_dim, inner, ("embed", "heads"))
        self.to_out = dense(rngs, inner, query_dim, ("heads", "embed"))
        self.q_norm = nnx.Param(jnp.ones((inner,), jnp.float32), sharding_names=("heads",))
        self.k_norm = nnx.Param(jnp.ones((inner,), jnp.float32), sharding_names=("heads",))
        self.to_gate_logits = dense(rngs, query_dim, heads, ("embed", None)) if gated else None

    def __call__(
        self,
        x: jnp.ndarray,
        kernel: AttentionFn,
        *,
        context: jnp.ndarray | None = None,
        mask: AttentionMask | None = None,
        q_rope: RopeTables | None = None,
        k_rope: RopeTables | None = None,
        skip: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Attend from x `[batch, tokens, query_dim]` to context `[batch, ctx_tokens, context_dim]` (x if None).

        mask: which context tokens each query may attend to (`AttentionMask`), or None for all.
        q_rope / k_rope: RoPE tables for queries and keys (k_rope defaults to q_rope).
        skip: `[batch]` 1.0 where the attention is replaced by the value projection (STG perturbation).
        Returns `[batch, tokens, query_dim]`.
        """
        context = x if context is None else context
        b, t, _ = x.shape
        s = context.shape[1]
        v = self.to_v(context)
        q = rms_norm(self.to_q(x), self.eps, self.q_norm[...]).reshape(b, t, self.heads, self.head_dim)
        k = rms_norm(self.to_k(context), self.eps, self.k_norm[...]).reshape(b, s, self.heads, self.head_dim)
        if q_rope is not None:
            q = apply_rope(q, q_rope)
            k = apply_rope(k, k_rope if k_rope is not None else q_rope)
        q = constrain(q, ("activation_batch", "activation_length", "activation_heads", None))
        out = kernel(q, k, v.reshape(b, s, self.heads, self.head_dim), mask).reshape(b, t, -1)
        if skip is not None:
            keep = (1.0 - skip).astype(out.dtype)[:, None, None]
            out = out * keep + v * (1 - keep)
        if self.to_gate_logits is not None:
            gates = 2.0 * jax.nn.sigmoid(self.to_gate_logits(x))
            out = head_gate(out.reshape(b, t, self.heads, self.head_dim), gates).reshape(b, t, -1)
        return self.to_out(out)
