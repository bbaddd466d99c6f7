"""Model-level properties of the Flax port (no reference needed): one scan over layers, remat, purity, grads."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers.inputs import make_inputs, random_model
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.inputs import Perturbations
from unityshots_jax.ltx.transformer import build_model, forward
from unityshots_jax.reference.tiny_configs import tiny_19b_config, tiny_transformer_config


def _cfg(num_layers: int = 2, model_type: str = "audio_video", layout: str = "22b", **kw) -> LTXConfig:
    make = tiny_19b_config if layout == "19b" else tiny_transformer_config
    return LTXConfig.from_checkpoint_config(make(num_layers=num_layers, **kw), model_type)


def _model(cfg: LTXConfig, seed: int = 0):
    return random_model(cfg, seed)


def _scans(jaxpr) -> list[int]:
    """Lengths of every `scan` in a closed jaxpr, nested ones included."""
    found = []

    def visit(jpr):
        for eqn in jpr.eqns:
            if eqn.primitive.name == "scan":
                found.append(eqn.params["length"])
            for sub in jax.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jaxpr.jaxpr)
    return found


def _count_eqns(jaxpr) -> int:
    n = 0

    def visit(jpr):
        nonlocal n
        for eqn in jpr.eqns:
            n += 1
            for sub in jax.core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jaxpr.jaxpr)
    return n


def test_one_scan_over_layers_for_any_depth():
    execution = ExecutionConfig(attention="dense")
    eqn_counts = {}
    for layers in (2, 6):
        cfg = _cfg(layers)
        graphdef, params = _model(cfg)
        video, audio = make_inputs(cfg)
        jaxpr = jax.make_jaxpr(forward, static_argnums=(0, 5))(graphdef, params, video, audio, None, execution)
        assert _scans(jaxpr) == [layers], "expected exactly one scan, over the layers"
        eqn_counts[layers] = _count_eqns(jaxpr)
        out_v, out_a = forward(graphdef, params, video, audio, None, execution)
        assert out_v.shape == (2, 12, cfg.video.out_channels) and out_a.shape == (2, 6, cfg.audio.out_channels)
        assert np.all(np.isfinite(out_v)) and np.all(np.isfinite(out_a))
        # the stacked parameters really carry one slice per layer
        assert params["blocks"]["attn1"]["to_q"]["kernel"].get_value().shape[0] == layers
    # the traced program does not grow with depth: the block body is traced (and compiled) once
    assert eqn_counts[2] == eqn_counts[6]


def test_chunked_attention_is_a_nested_map_inside_the_layer_scan():
    cfg = _cfg(3)
    graphdef, params = _model(cfg)
    video, audio = make_inputs(cfg)
    execution = ExecutionConfig(attention="chunked", attention_chunk=4)  # 12 video tokens → 3 chunks
    jaxpr = jax.make_jaxpr(forward, static_argnums=(0, 5))(graphdef, params, video, audio, None, execution)
    lengths = _scans(jaxpr)
    assert lengths.count(3) >= 1 and lengths[0] == 3  # the layer scan comes first, chunk maps inside it
    dense = forward(graphdef, params, video, audio, None, ExecutionConfig(attention="dense"))
    chunked = forward(graphdef, params, video, audio, None, execution)
    for a, b in zip(dense, chunked):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-5 * float(np.abs(a).max()))


@pytest.mark.parametrize("attention", ["chunked", "xla"])
def test_attention_kernels_agree_with_dense(attention):
    cfg = _cfg(2, rope_type="interleaved", audio_heads=4)
    graphdef, params = _model(cfg, seed=3)
    video, audio = make_inputs(cfg, seed=3)
    ref = forward(graphdef, params, video, audio, None, ExecutionConfig(attention="dense"))
    out = forward(graphdef, params, video, audio, None, ExecutionConfig(attention=attention, attention_chunk=5))
    for a, b in zip(ref, out):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=2e-5 * float(np.abs(a).max()))


def _loss_fn(graphdef, video, audio, execution, perturbations=None):
    kv = jax.random.normal(jax.random.key(7), (2, 12, 16))
    ka = jax.random.normal(jax.random.key(8), (2, 6, 16))

    def loss(params):
        v, a = forward(graphdef, params, video, audio, perturbations, execution)
        total = 0.0
        if v is not None:
            total = total + jnp.sum(v * kv[..., : v.shape[-1]])
        if a is not None:
            total = total + jnp.sum(a * ka[..., : a.shape[-1]])
        return total

    return loss


def test_remat_policies_same_outputs_and_gradients():
    # video-only keeps the three backward compiles affordable on CPU; remat wraps the same scanned block body
    cfg = _cfg(2, model_type="video_only")
    graphdef, params = _model(cfg)
    video, audio = make_inputs(cfg)
    results = {}
    for remat in ("none", "full", "dots"):
        execution = ExecutionConfig(attention="dense", remat=remat)
        out = forward(graphdef, params, video, audio, None, execution)
        grads = jax.jit(jax.grad(_loss_fn(graphdef, video, audio, execution)))(params)
        results[remat] = (out, grads)
    ref_out, ref_grads = results["none"]
    for remat in ("full", "dots"):
        out, grads = results[remat]
        assert out[1] is None and ref_out[1] is None
        np.testing.assert_allclose(np.asarray(out[0]), np.asarray(ref_out[0]), rtol=0, atol=1e-6)
        flat_ref = jax.tree_util.tree_leaves_with_path(ref_grads)
        flat = jax.tree_util.tree_leaves(grads)
        assert len(flat) == len(flat_ref)
        for (path, a), b in zip(flat_ref, flat):
            # remat changes what XLA recomputes and how it fuses it, so float32 rounding differs: measured up to
            # 1.1e-6 of the leaf's largest entry (k_norm, classic CPU emitters); a remat wiring error is O(scale)
            scale = max(1.0, float(jnp.abs(a).max()))
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-5 * scale,
                                       err_msg=f"{remat}: {jax.tree_util.keystr(path)}")


def test_jitted_pure_forward_equals_eager_module():
    cfg = _cfg(2)
    graphdef, params = _model(cfg, seed=1)
    video, audio = make_inputs(cfg, seed=1)
    perturbations = Perturbations.from_spec(((("skip_video_self_attn", (1,)),), (("skip_a2v_cross_attn", None),)),
                                            cfg.num_layers)
    execution = ExecutionConfig(attention="dense")
    jitted = forward(graphdef, params, video, audio, perturbations, execution)
    model = nnx.merge(graphdef, params)
    eager = model(video, audio, perturbations, execution)
    for a, b in zip(eager, jitted):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=2e-6 * float(np.abs(a).max()))
    # perturbations take effect
    plain = forward(graphdef, params, video, audio, None, execution)
    assert float(jnp.abs(plain[0] - jitted[0]).max()) > 1e-3


@pytest.mark.parametrize("model_type,layout", [("audio_video", "22b"),
                                               pytest.param("audio_video", "19b", marks=pytest.mark.slow)])
def test_gradients_finite_and_nonzero_for_every_parameter(model_type, layout):
    cfg = _cfg(2, model_type=model_type, layout=layout)
    graphdef, params = _model(cfg, seed=2)
    video, audio = make_inputs(cfg, seed=2)
    grads = jax.jit(jax.grad(_loss_fn(graphdef, video, audio, ExecutionConfig())))(params)
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert len(leaves) == len(jax.tree_util.tree_leaves(params))
    for path, g in leaves:
        g = np.asarray(g)
        name = jax.tree_util.keystr(path)
        assert np.all(np.isfinite(g)), name
        assert np.any(g != 0), f"zero gradient for {name}"
        if "blocks" in name:  # every layer's slice of a stacked parameter gets a gradient
            assert all(np.any(g[i] != 0) for i in range(cfg.num_layers)), name


def test_missing_or_foreign_streams_are_rejected():
    cfg = _cfg(1, model_type="video_only")
    graphdef, params = _model(cfg)
    video, _ = make_inputs(cfg)
    _, audio = make_inputs(_cfg(1))
    with pytest.raises(ValueError, match="no audio stream"):
        forward(graphdef, params, video, audio)
    with pytest.raises(ValueError, match="at least one"):
        forward(graphdef, params, None, None)
    out_v, out_a = forward(graphdef, params, video, None)
    assert out_v.shape == (2, 12, 16) and out_a is None


def test_bf16_execution_runs_in_bf16():
    cfg = _cfg(2)
    graphdef, params = _model(cfg)
    video, audio = make_inputs(cfg)
    ref = forward(graphdef, params, video, audio, None, ExecutionConfig(attention="dense"))
    params16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    out = forward(graphdef, params16, video, audio, None, ExecutionConfig(attention="dense", dtype="bfloat16"))
    for a, b in zip(ref, out):
        assert b.dtype == jnp.bfloat16
        err = float(jnp.abs(b.astype(jnp.float32) - a).max()) / float(jnp.abs(a).max())
        assert 0 < err < 5e-2


def test_build_model_initialises_the_abstract_structure():
    """The Flax initialisers produce exactly the tree `abstract_model` (used by convert / load) describes."""
    from unityshots_jax.ltx.transformer import abstract_model

    cfg = _cfg(1, model_type="audio_only", layout="19b")
    _, state = nnx.split(build_model(cfg, nnx.Rngs(0)))
    _, abstract = nnx.split(abstract_model(cfg))
    shapes = {p: (v.get_value().shape, v.get_value().dtype) for p, v in nnx.to_flat_state(state)}
    expected = {p: (v.get_value().shape, v.get_value().dtype) for p, v in nnx.to_flat_state(abstract)}
    assert shapes == expected
    assert shapes[("blocks", "audio_attn1", "to_q", "kernel")][0] == (1, 16, 16)
