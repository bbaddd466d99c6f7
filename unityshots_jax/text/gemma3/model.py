"""The Gemma-3 text tower in Flax NNX, returning every hidden state (transformers' `output_hidden_states`).

Matches transformers 4.57.6's `Gemma3TextModel` as ltx-core 1.0.0 calls it (`input_ids`, `attention_mask`, no
`position_ids`, SDPA attention):
* embeddings scaled by √hidden rounded to the weights' dtype (bf16: √3840 → 62.0);
* per layer: RMSNorm (scale 1 + w, float32 math) → GQA attention with per-head q/k RMSNorm and RoPE
  (local layers: base `rope_local_base_freq`; global layers: `rope_theta` with linear scaling) → post-norm →
  residual; the same around the gelu-tanh gated MLP;
* positions 0..T−1 whatever the padding; the mask is causal ∧ key-not-padding (∧ q−k < window on local
  layers); a query row with no allowed key (a left pad) gets a zero attention output, as SDPA gives;
* hidden states: the embeddings, the output of layers 1..L−1, and the final-normed output of layer L.

Layers are stacked on a leading "layers" axis and run by one `lax.scan`; local vs global is a per-layer flag.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.ltx.layers import dense, rms_norm
from unityshots_jax.ltx.rope import RopeTables, apply_rope
from unityshots_jax.sharding import constrain
from unityshots_jax.text.gemma3.config import Gemma3TextConfig

_ACT = ("activation_batch", "activation_length", "activation_embed")


def gemma_norm(x: jnp.ndarray, weight: nnx.Param | jnp.ndarray, eps: float) -> jnp.ndarray:
    """Gemma RMSNorm over the last dim of x `[..., dim]`: float32 math, scale (1 + w), cast back to x's dtype."""
    return rms_norm(x, eps, 1.0 + jnp.asarray(weight[...], jnp.float32))


def _norm_param(dim: int, axis: str | None) -> nnx.Param:
    return nnx.Param(jnp.zeros((dim,), jnp.float32), sharding_names=(axis,))


class GemmaAttention(nnx.Module):
    """q/k/v/o projections without bias (HF names), q_norm / k_norm `[head_dim]` per head."""

    def __init__(self, cfg: Gemma3TextConfig, rngs: nnx.Rngs):
        h, d = cfg.hidden_size, cfg.head_dim
        self.q_proj = dense(rngs, h, cfg.num_heads * d, ("embed", "heads"), bias=False)
        self.k_proj = dense(rngs, h, cfg.num_kv_heads * d, ("embed", "heads"), bias=False)
        self.v_proj = dense(rngs, h, cfg.num_kv_heads * d, ("embed", "heads"), bias=False)
        self.o_proj = dense(rngs, cfg.num_heads * d, h, ("heads", "embed"), bias=False)
        self.q_norm = _norm_param(d, None)
        self.k_norm = _norm_param(d, None)

    def __call__(self, x: jnp.ndarray, rope: RopeTables, allowed: jnp.ndarray, cfg: Gemma3TextConfig) -> jnp.ndarray:
        """x `[batch, tokens, hidden]`; allowed `[batch, tokens(q), tokens(k)]` bool → `[batch, tokens, hidden]`."""
        b, t, _ = x.shape
        g, d = cfg.num_kv_heads, cfg.head_dim
        r = cfg.num_heads // g
        q = gemma_norm(self.q_proj(x).reshape(b, t, cfg.num_heads, d), self.q_norm, cfg.rms_norm_eps)
        k = gemma_norm(self.k_proj(x).reshape(b, t, g, d), self.k_norm, cfg.rms_norm_eps)
        v = self.v_proj(x).reshape(b, t, g, d)
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        # query head n uses key/value head n // r (transformers' repeat_kv)
        scores = jnp.einsum("btgrd,bsgd->bgrts", q.reshape(b, t, g, r, d), k, preferred_element_type=jnp.float32)
        scores = scores * (cfg.query_pre_attn_scalar ** -0.5)
        keep = allowed[:, None, None]
        scores = jnp.where(keep, scores, jnp.finfo(jnp.float32).min)
        probs = jax.nn.softmax(scores, axis=-1)
        probs = jnp.where(jnp.any(keep, axis=-1, keepdims=True), probs, 0.0).astype(v.dtype)
        out = jnp.einsum("bgrts,bsgd->btgrd", probs, v, preferred_element_type=jnp.float32).astype(v.dtype)
        return self.o_proj(out.reshape(b, t, cfg.num_heads * d))


class GemmaMLP(nnx.Module):
    """down(gelu_tanh(gate(x)) · up(x)), no biases."""

    def __init__(self, cfg: Gemma3TextConfig, rngs: nnx.Rngs):
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = dense(rngs, h, i, ("embed", "mlp"), bias=False)
        self.up_proj = dense(rngs, h, i, ("embed", "mlp"), bias=False)
        self.down_proj = dense(rngs, i, h, ("mlp", "embed"), bias=False)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[batch, tokens, hidden]` → same shape."""
        return self.down_proj(jax.nn.gelu(self.gate_proj(x), approximate=True) * self.up_proj(x))


class GemmaLayer(nnx.Module):
    """One decoder layer: pre/post norms around attention and around the MLP."""

    def __init__(self, cfg: Gemma3TextConfig, rngs: nnx.Rngs):
        self.self_attn = GemmaAttention(cfg, rngs)
        self.mlp = GemmaMLP(cfg, rngs)
        self.input_layernorm = _norm_param(cfg.hidden_size, "embed")
        self.post_attention_layernorm = _norm_param(cfg.hidden_size, "embed")
        self.pre_feedforward_layernorm = _norm_param(cfg.hidden_size, "embed")
        self.post_feedforward_layernorm = _norm_param(cfg.hidden_size, "embed")

    def __call__(self, x: jnp.ndarray, rope: RopeTables, allowed: jnp.ndarray, cfg: Gemma3TextConfig) -> jnp.ndarray:
        """x `[batch, tokens, hidden]` → same shape."""
        eps = cfg.rms_norm_eps
        h = self.self_attn(gemma_norm(x, self.input_layernorm, eps), rope, allowed, cfg)
        x = x + gemma_norm(h, self.post_attention_layernorm, eps)
        h = self.mlp(gemma_norm(x, self.pre_feedforward_layernorm, eps))
        return x + gemma_norm(h, self.post_feedforward_layernorm, eps)


def _make_layers(cfg: Gemma3TextConfig, rngs: nnx.Rngs) -> GemmaLayer:
    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=cfg.num_layers, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make(r: nnx.Rngs) -> GemmaLayer:
        return GemmaLayer(cfg, r)

    return make(rngs)


def rope_tables(cfg: Gemma3TextConfig, tokens: int, local: bool, dtype: jnp.dtype) -> RopeTables:
    """cos/sin `[1, tokens, 1, head_dim // 2]` for positions 0..tokens−1: float32 angles, cast to `dtype`."""
    inv = cfg.inv_freq(local)
    ang = jnp.arange(tokens, dtype=jnp.float32)[:, None] * jnp.asarray(inv)[None, :]
    return RopeTables(jnp.cos(ang)[None, :, None].astype(dtype), jnp.sin(ang)[None, :, None].astype(dtype), split=True)


def attention_masks(cfg: Gemma3TextConfig, mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(global, local) allowed-key masks `[batch, tokens, tokens]` bool from the padding mask `[batch, tokens]`."""
    t = mask.shape[1]
    q = jnp.arange(t)[:, None]
    k = jnp.arange(t)[None, :]
    full = (k <= q)[None] & (mask[:, None, :] > 0)
    return full, full & (k > q - cfg.sliding_window)[None]


class Gemma3TextTower(nnx.Module):
    """Embeddings, stacked decoder layers, final norm; parameter names follow the HF state dict."""

    def __init__(self, cfg: Gemma3TextConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        emb = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.hidden_size), jnp.float32) * 0.02
        self.embed_tokens = nnx.Param(emb, sharding_names=("vocab", "embed"))
        self.layers = _make_layers(cfg, rngs)
        self.norm = _norm_param(cfg.hidden_size, "embed")

    def __call__(self, input_ids: jnp.ndarray, mask: jnp.ndarray, dtype: jnp.dtype = jnp.float32) -> jnp.ndarray:
        """input_ids, mask `[batch, tokens]` int (mask 1 = real token) → hidden states `[layers + 1, batch, tokens,
        hidden]` in `dtype` (index 0: embeddings; index L: after the final norm)."""
        cfg = self.cfg
        dtype = jnp.dtype(dtype)
        if cfg.image_token_id is not None:
            input_ids = jnp.where(input_ids == cfg.image_token_id, 0, input_ids)
        table = self.embed_tokens[...].astype(dtype)
        x = constrain(jnp.take(table, input_ids, axis=0) * cfg.embed_scale.astype(dtype), _ACT)
        t = input_ids.shape[1]
        ropes = (rope_tables(cfg, t, False, dtype), rope_tables(cfg, t, True, dtype))
        full, local = attention_masks(cfg, mask)
        graphdef, state = nnx.split(self.layers)

        def body(h, xs):
            layer_state, sliding = xs
            rope = jax.tree.map(lambda g, l: jnp.where(sliding, l, g), *ropes)
            allowed = jnp.where(sliding, local, full)
            out = nnx.merge(graphdef, layer_state)(h, rope, allowed, cfg)
            out = constrain(out, _ACT)
            return out, out

        last, outs = jax.lax.scan(body, x, (state, jnp.asarray(np.array(cfg.sliding))))
        final = gemma_norm(last, self.norm, cfg.rms_norm_eps)
        return jnp.concatenate([x[None], outs[:-1], final[None]], axis=0)


def abstract_tower(cfg: Gemma3TextConfig) -> Gemma3TextTower:
    """The tower with `jax.ShapeDtypeStruct` leaves (shapes and names, nothing allocated)."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: Gemma3TextTower(cfg, nnx.Rngs(0)))


@functools.partial(jax.jit, static_argnames=("graphdef", "dtype"))
def hidden_states(graphdef: nnx.GraphDef, params: nnx.State, input_ids: jnp.ndarray, mask: jnp.ndarray,
                  dtype: str = "float32") -> jnp.ndarray:
    """Pure, jitted forward: (graphdef, params) from `nnx.split(tower)`; see `Gemma3TextTower.__call__`."""
    return nnx.merge(graphdef, params)(input_ids, mask, jnp.dtype(dtype))
