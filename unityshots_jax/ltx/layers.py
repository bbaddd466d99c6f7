"""Small building blocks shared by the transformer modules: annotated dense layers, norms, the feed-forward."""

from __future__ import annotations

import functools

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


def row_sum(x: jnp.ndarray) -> jnp.ndarray:
    """Sum over the last dim, keeping it (`[..., n]` → `[..., 1]`), float32.

    On CPU this is a matrix-vector product with a ones column: XLA CPU hands a standalone last-dim
    `reduce(multiply(...))` (what autodiff makes of a norm or a broadcast gate) to YNNPACK, which runs it ~6× slower
    than a dot (experiments/RESULTS.md). Elsewhere it is a plain reduction.
    """
    x = x.astype(jnp.float32)

    def as_dot(x):
        return jnp.matmul(x, jnp.ones((x.shape[-1], 1), jnp.float32), precision=jax.lax.Precision.HIGHEST)

    return jax.lax.platform_dependent(x, cpu=as_dot, default=lambda x: jnp.sum(x, axis=-1, keepdims=True))


def _rms_forward(x: jnp.ndarray, weight: jnp.ndarray | None, eps: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    xf = x.astype(jnp.float32)
    r = jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    out = xf * r
    if weight is not None:
        out = out * weight.astype(jnp.float32)
    return out.astype(x.dtype), r


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _rms_norm(x: jnp.ndarray, weight: jnp.ndarray | None, eps: float) -> jnp.ndarray:
    return _rms_forward(x, weight, eps)[0]


def _rms_norm_fwd(x, weight, eps):
    out, r = _rms_forward(x, weight, eps)
    return out, (x, r, weight)


def _rms_norm_bwd(eps, res, g):
    # y = w·x·r, r = (mean(x²) + eps)^-½  ⇒  dx = r·(g·w − n·mean(g·w·n)) with n = x·r;  dw = Σ g·n
    x, r, weight = res
    n = x.astype(jnp.float32) * r
    gf = g.astype(jnp.float32)
    gw = gf if weight is None else gf * weight.astype(jnp.float32)
    dx = r * (gw - n * (row_sum(gw * n) / x.shape[-1]))
    dw = None if weight is None else jnp.sum((gf * n).reshape(-1, x.shape[-1]), axis=0).astype(weight.dtype)
    return dx.astype(x.dtype), dw


_rms_norm.defvjp(_rms_norm_fwd, _rms_norm_bwd)


def rms_norm(x: jnp.ndarray, eps: float, weight: jnp.ndarray | None = None) -> jnp.ndarray:
    """RMSNorm over the last dim of `x` `[..., dim]`, computed in float32 and cast back to `x.dtype`.

    Hand-written backward (saves x and the row rsqrt only; last-dim sums via `row_sum`).
    """
    return _rms_norm(x, weight, eps)


@jax.custom_vjp
def head_gate(x: jnp.ndarray, gates: jnp.ndarray) -> jnp.ndarray:
    """x `[..., heads, head_dim]` · gates `[..., heads]` (broadcast over head_dim); backward sums via `row_sum`."""
    return x * gates[..., None]


def _head_gate_fwd(x, gates):
    return x * gates[..., None], (x, gates)


def _head_gate_bwd(res, g):
    x, gates = res
    dgates = row_sum(g.astype(jnp.float32) * x.astype(jnp.float32))[..., 0]
    return (g * gates[..., None]).astype(x.dtype), dgates.astype(gates.dtype)


head_gate.defvjp(_head_gate_fwd, _head_gate_bwd)


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
