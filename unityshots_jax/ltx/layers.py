"""Small building blocks shared by the transformer modules: annotated dense layers, norms, the feed-forward."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_INIT = nnx.initializers.normal(0.02)


def dense(rngs: nnx.Rngs, features_in: int, features_out: int, axes: tuple[str, str], bias: bool = True) -> nnx.Linear:
    """A Linear `[in, out]` kernel whose logical axis names are `axes` (bias gets `axes[1]`)."""
    return nnx.Linear(
        features_in,
        features_out,
        use_bias=bias,
        kernel_init=nnx.with_partitioning(_INIT, axes),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (axes[1],)),
        rngs=rngs,
    )


def table(rngs: nnx.Rngs, rows: int, dim: int) -> nnx.Param:
    """A modulation table `[rows, dim]` (added to AdaLN projections), logical axes (None, "embed")."""
    value = jax.random.normal(rngs.params(), (rows, dim), jnp.float32) / dim**0.5
    return nnx.Param(value, sharding_names=(None, "embed"))


def rms_norm(x: jnp.ndarray, eps: float, weight: jnp.ndarray | None = None) -> jnp.ndarray:
    """RMSNorm over the last dim of `x` `[..., dim]`, computed in float32 and cast back to `x.dtype`."""
    xf = x.astype(jnp.float32)
    out = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    if weight is not None:
        out = out * weight.astype(jnp.float32)
    return out.astype(x.dtype)


def layer_norm(x: jnp.ndarray, eps: float) -> jnp.ndarray:
    """LayerNorm without affine parameters over the last dim of `x` `[..., dim]` (float32 math)."""
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    return ((xf - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


class FeedForward(nnx.Module):
    """Linear dim→mult·dim, GELU (tanh approximation), Linear back to dim (ltx-core `FeedForward`)."""

    def __init__(self, dim: int, rngs: nnx.Rngs, mult: int = 4):
        self.proj_in = dense(rngs, dim, dim * mult, ("embed", "mlp"))
        self.proj_out = dense(rngs, dim * mult, dim, ("mlp", "embed"))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: `[batch, tokens, dim]` → `[batch, tokens, dim]`."""
        return self.proj_out(jax.nn.gelu(self.proj_in(x), approximate=True))


class CaptionProjection(nnx.Module):
    """LTX-2 (19B) caption projection inside the transformer: Linear → GELU(tanh) → Linear."""

    def __init__(self, features_in: int, dim: int, rngs: nnx.Rngs):
        self.linear_1 = dense(rngs, features_in, dim, ("caption", "embed"))
        self.linear_2 = dense(rngs, dim, dim, ("embed", "mlp"))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x: `[batch, text_tokens, caption_channels]` → `[batch, text_tokens, dim]`."""
        return self.linear_2(jax.nn.gelu(self.linear_1(x), approximate=True))
