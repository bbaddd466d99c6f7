"""Every attention kernel computes dense softmax attention: outputs and gradients, with and without masks."""

from __future__ import annotations

import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unityshots_jax.ltx import attention_kernels
from unityshots_jax.ltx.attention_kernels import attention_kernel
from unityshots_jax.config_files import load_config
from unityshots_jax.ltx.attention_mask import AttentionMask
from unityshots_jax.ltx.config import ExecutionConfig

KINDS = [k for k in attention_kernels.KERNELS if k not in ("dense", "cudnn")]


def _inputs(bias_kind: str, seed: int = 0):
    b, tq, tk, h, d = 2, 11, 9, 2, 8
    keys = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(keys[0], (b, tq, h, d))
    k = jax.random.normal(keys[1], (b, tk, h, d))
    v = jax.random.normal(keys[2], (b, tk, h, d))
    if bias_kind == "none":
        bias = None
    elif bias_kind == "key-mask":  # text padding mask: visible keys `[b, tk]`
        bias = AttentionMask(key_valid=jnp.ones((b, tk)).at[1, :3].set(0.0))
    elif bias_kind == "no-visible-key":  # a row that sees nothing: every kernel averages v over the real keys
        bias = AttentionMask(key_valid=jnp.ones((b, tk)).at[1].set(0.0))
    else:  # per-query soft self-attention bias `[b, 1, tq, tk]` and padding keys
        soft = jnp.log(jax.random.uniform(keys[3], (b, 1, tq, tk), minval=0.05, maxval=1.0))
        bias = AttentionMask(key_valid=jnp.ones((b, tk)).at[0, -2:].set(0.0), bias=soft)
    return q, k, v, bias


# splash refuses soft per-query biases: test_splash_refuses_a_soft_bias
CASES = [(kind, mask) for kind in KINDS for mask in ("none", "key-mask", "no-visible-key", "per-query")
         if not (kind == "splash" and mask == "per-query")]


@pytest.mark.parametrize("kind, bias_kind", CASES)
def test_kernel_matches_dense(kind, bias_kind):
    q, k, v, bias = _inputs(bias_kind)
    dense = attention_kernel("dense")
    other = attention_kernel(kind, 4)  # 11 queries → 3 chunks with padding
    np.testing.assert_allclose(np.asarray(jax.jit(other)(q, k, v, bias)), np.asarray(jax.jit(dense)(q, k, v, bias)),
                               rtol=0, atol=2e-6)

    w = jax.random.normal(jax.random.key(9), q.shape)

    def loss(fn):
        return lambda q, k, v: jnp.sum(fn(q, k, v, bias) * w)

    ref = jax.jit(jax.grad(loss(dense), argnums=(0, 1, 2)))(q, k, v)
    got = jax.jit(jax.grad(loss(other), argnums=(0, 1, 2)))(q, k, v)
    for name, a, g in zip("qkv", ref, got):
        assert np.all(np.isfinite(np.asarray(g))), name
        if bias_kind == "no-visible-key":
            # a row that sees no key has no meaningful gradient: dq / dk are rounding artefacts of the -max bias,
            # and flash's saved log-sum-exp rounds to -max, which scales that row's dv by the key count
            continue
        np.testing.assert_allclose(np.asarray(g), np.asarray(a), rtol=0, atol=1e-5, err_msg=f"d{name}")


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="unknown kernel 'nope'"):
        attention_kernel("nope")


def test_splash_refuses_a_soft_bias():
    q, k, v, mask = _inputs("per-query")
    with pytest.raises(ValueError, match="segment ids"):
        attention_kernel("splash")(q, k, v, mask)


@pytest.mark.parametrize("backend, dtype, kind", [
    ("tpu", "bfloat16", "splash"), ("tpu", "float32", "splash"), ("gpu", "bfloat16", "cudnn"),
    ("gpu", "float32", "flash"), ("cpu", "float32", "flash"), ("cpu", "bfloat16", "flash"),
])
def test_auto_resolves_per_backend_and_logs_the_choice(backend, dtype, kind, caplog):
    attention_kernels.resolve_attention.cache_clear()
    with caplog.at_level(logging.INFO, logger=attention_kernels.__name__):
        assert attention_kernels.resolve_attention("auto", backend, dtype) == kind
    assert f"using the {kind!r} kernel" in caplog.text and backend in caplog.text
    assert attention_kernels.resolve_attention("dense", backend, dtype) == "dense"  # explicit choices stay


def test_auto_is_the_default_everywhere():
    assert ExecutionConfig().attention == "auto"
    with pytest.raises(ValueError, match="unknown kernel 'splashy'"):
        attention_kernels.resolve_attention("splashy", "tpu")
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
    files = sorted(f for f in os.listdir(root)
                   if f.endswith(".py") and "def get_config" in open(os.path.join(root, f)).read())
    with_execution = [f for f in files if "execution" in load_config(os.path.join(root, f))]
    assert len(with_execution) >= 8, with_execution
    for name in with_execution:
        assert load_config(os.path.join(root, name)).execution.attention == "auto", name
