"""The UnityShots story model: the shot scan equals a Python loop over shots, the carried state is constant-size
with one compilation for every story length, and a memory-less shot equals the plain transformer (ours and
ltx-core 1.0.0). Tiny model; fixtures in helpers/story_fixtures.py."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unityshots_jax.ltx.inputs import StreamInput
from unityshots_jax.ltx.sampler import SamplerConfig
from unityshots_jax.ltx.sampling import GuidanceParams
from unityshots_jax.ltx.transformer import forward
from unityshots_jax.story import shot_scan
from unityshots_jax.story.story_state import StoryState, init_state
from helpers.story_fixtures import (
    LTX,
    DV,
    DA,
    SC,
    FRAME,
    EXEC,
    story_params,
    default_model,
    velocity,
    backbone_split,
    story,
    shot_at,
    rel_err,
    noisy_shot,
    _shot_zero,
    _backbone_inputs,
    N_FRAMES,
    N_AUDIO,
)


# ------------------------------------------------------------------------------------------- 1. scan == loop
GUIDED = shot_scan.SamplingConfig(
    SamplerConfig(steps=2),
    video=GuidanceParams(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(1,)),
    audio=GuidanceParams(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(0,)),
)


SC9 = dataclasses.replace(SC, max_shots=9)


@functools.lru_cache(maxsize=None)
def model9():
    """Tests 1 and 2 share this model, the guided sampling and batch 1, so one compile of generate_story serves
    both when they run in the same process."""
    graphdef, params = story_params(SC9, seed=1)
    # non-zero cut embeddings so the cut prior takes part in the scan
    rng = np.random.default_rng(5)
    pure = nnx.to_pure_dict(params)
    pure["memory"]["cut_video"]["table"] = jnp.asarray(0.3 * rng.standard_normal((3, DV)), jnp.float32)
    pure["memory"]["cut_audio"]["table"] = jnp.asarray(0.3 * rng.standard_normal((3, DA)), jnp.float32)
    nnx.replace_by_pure_dict(params, pure)
    return graphdef, params


def test_shot_scan_equals_python_loop_over_story_step():
    graphdef, params = model9()
    k = 4
    inputs = story(
        SC9, k, [["i2v", "t2v", "r2v", "i2v"]], seed=3,
        n_frames=[[5, 6, 4, 5]], n_audio=[[7, 8, 5, 6]], cut=[[0.0, 0.4, 1.0, 0.7]], boundary=[[0.0, 0.25, 1.0, 0.5]],
        ref_audio_mask=[[1, 1, 1, 0]],
    )
    key = jax.random.key(42)
    video, audio, final = shot_scan.generate_story(graphdef, params, inputs, key, GUIDED, EXEC)

    @jax.jit
    def step(params, inputs, carry, xs):
        return shot_scan.story_step(nnx.merge(graphdef, params), inputs, GUIDED, EXEC, carry, xs)

    carry = (init_state(SC9, inputs.batch, jnp.float32), key)
    loop_v, loop_a = [], []
    per_shot_refs = inputs.per_shot_refs()  # what the scan runs over beside the shots
    for i in range(SC9.max_shots):
        carry, (v, a) = step(params, inputs, carry, (shot_at(inputs, i), jax.tree.map(lambda x, i=i: x[i], per_shot_refs)))
        loop_v.append(v)
        loop_a.append(a)
    loop_v, loop_a = jnp.stack(loop_v), jnp.stack(loop_a)

    assert video.shape == (SC9.max_shots, 1, SC.video_frames, *FRAME)
    assert audio.shape == (SC9.max_shots, 1, SC.audio_frames, SC.audio_channels)
    assert np.all(np.isfinite(video)) and np.all(np.isfinite(audio))
    assert float(jnp.abs(video[:k]).mean()) > 0.05 and float(jnp.abs(audio[:k]).mean()) > 0.05
    np.testing.assert_allclose(loop_v, video, rtol=0, atol=1e-5 * max(1.0, float(jnp.abs(video).max())))
    np.testing.assert_allclose(loop_a, audio, rtol=0, atol=1e-5 * max(1.0, float(jnp.abs(audio).max())))
    state = carry[0]
    for name in ("ltm", "tail", "prev_pool"):
        scale = max(1.0, float(jnp.abs(getattr(final, name)).max()))  # float32 noise grows with the values (~8)
        np.testing.assert_allclose(getattr(state, name), getattr(final, name), rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(final.shots_done, [k])
    np.testing.assert_array_equal(state.shots_done, [k])
    # padding shots and padded frames / audio are exactly zero; an I2V shot keeps its first frame
    assert not np.any(np.asarray(video[k:])) and not np.any(np.asarray(audio[k:]))
    nf = np.asarray(inputs.shots.n_frames)[:, 0]
    na = np.asarray(inputs.shots.n_audio)[:, 0]
    for i in range(k):
        assert not np.any(np.asarray(video[i, 0, nf[i]:])) and not np.any(np.asarray(audio[i, 0, na[i]:]))
        assert np.all(np.abs(np.asarray(video[i, 0, : nf[i]])).max(axis=(1, 2, 3)) > 0)
    for i in (0, 3):  # the I2V shots
        np.testing.assert_allclose(video[i, 0, 0], inputs.shots.first_frame[i, 0], atol=1e-5)
    # shots differ from each other (the memory / prompts take effect) and the final state holds the last shot
    assert rel_err(video[1, 0, :4], video[2, 0, :4]) > 1e-2
    np.testing.assert_allclose(final.tail[0], video[3, 0, 1:5], atol=1e-6)  # last 4 valid frames (n = 5)


# ---------------------------------------------------------------------------- 2. constant state, one compile
def test_state_constant_size_and_one_compilation_for_1_to_9_shots():
    graphdef, params = model9()
    before = shot_scan.generate_story._cache_size()
    signatures, sizes, caches = [], [], []
    cycle = ["i2v", "t2v", "r2v"] * 3
    for k in range(1, 10):
        inputs = story(SC9, k, [cycle[:k]], seed=k, n_frames=[[5] * k], n_audio=[[7] * k],
                       cut=[[1.0] * k], boundary=[[0.5] * k])
        video, audio, state = shot_scan.generate_story(graphdef, params, inputs, jax.random.key(k), GUIDED, EXEC)
        caches.append(shot_scan.generate_story._cache_size())
        assert isinstance(state, StoryState)
        signatures.append(jax.tree.map(lambda x: (x.shape, x.dtype), state))
        sizes.append(sum(x.nbytes for x in jax.tree.leaves(state)))
        assert int(state.shots_done[0]) == k
        assert video.shape == (9, 1, SC.video_frames, *FRAME) and audio.shape == (9, 1, SC.audio_frames, 16)
        assert not np.any(np.asarray(video[k:])) and not np.any(np.asarray(audio[k:]))  # padding shots
        assert np.all(np.abs(np.asarray(video[:k, 0, :5])).max(axis=(2, 3, 4)) > 0)  # every real frame
        assert np.all(np.abs(np.asarray(audio[:k, 0, :7])).max(axis=2) > 0)
        if k > 1:  # the last real shot's tail is what the state carries
            np.testing.assert_allclose(state.tail[0], video[k - 1, 0, 1:5], atol=1e-6)
    assert all(s == signatures[0] for s in signatures)
    assert len(set(sizes)) == 1
    frame_bytes = 4 * int(np.prod(FRAME))
    assert sizes[0] == frame_bytes * (SC.ltm_frames + SC.stm_frames) + 4 * SC.latent_channels + 4
    assert caches[0] - before <= 1
    assert caches == [caches[0]] * 9, f"recompiled: cache sizes {caches}"


# ------------------------------------------------------------------ 3a. memory-less shot == plain transformer

def test_shot0_without_memory_equals_plain_transformer_on_shot_tokens():
    graphdef, params = default_model()
    inputs, shot = _shot_zero(["t2v", "t2v"], [N_FRAMES] * 2, [N_AUDIO] * 2, cut=[1.0, 0.4])
    state = init_state(SC, 2)
    noisy_v, noisy_a, sigma = noisy_shot(2)
    vv, va = velocity(graphdef, params, noisy_v, noisy_a, sigma, shot, inputs.refs, state)
    bgraph, bparams = backbone_split(graphdef, params)
    ref_v, ref_a = forward(bgraph, bparams, *_backbone_inputs(shot, N_FRAMES, N_AUDIO, noisy_v, noisy_a, sigma), None, EXEC)
    ours_v = vv[:, :N_FRAMES].reshape(2, N_FRAMES * SC.frame_tokens, -1)
    assert float(jnp.abs(ref_v).max()) > 0.1 and float(jnp.abs(ref_a).max()) > 0.1
    assert rel_err(ours_v, ref_v) < 1e-5, rel_err(ours_v, ref_v)
    assert rel_err(va[:, :N_AUDIO], ref_a) < 1e-5, rel_err(va[:, :N_AUDIO], ref_a)
    # the comparison is sharp: the same shot with its padding frames visible is different
    _, shot_full = _shot_zero(["t2v", "t2v"], [6, 6], [N_AUDIO] * 2, cut=[1.0, 0.4])
    vv_full, _ = velocity(graphdef, params, noisy_v, noisy_a, sigma, shot_full, inputs.refs, state)
    assert rel_err(vv_full[:, :N_FRAMES], vv[:, :N_FRAMES]) > 1e-3


def _ltx_core_shot0(converted, seed):
    """(story velocities on the valid tokens, ltx-core fp32 velocities, ltx-core float64 velocities, our backbone's
    velocities) for shot 0 of a 2-story batch, the backbone loaded from a converted tiny ltx-core checkpoint."""
    from helpers.checkpoints import Spec
    from unityshots_jax.checkpoint.ltx_convert import load_params, params_as
    from unityshots_jax.reference.ltx_reference import load_reference
    from unityshots_jax.reference.run_reference import run_reference
    from unityshots_jax.reference.verify_cases import StreamInputs, VerifyCase

    src, dst = converted(Spec())
    cfg, tree = load_params(dst)
    assert cfg == LTX and cfg.video.in_channels == SC.latent_channels and cfg.audio.in_channels == SC.audio_channels
    graphdef, params = story_params(SC, ltx=cfg, backbone=params_as(tree, "float32"))
    inputs, shot = _shot_zero(["t2v", "t2v"], [N_FRAMES] * 2, [N_AUDIO] * 2, cut=[0.0, 1.0], seed=seed)
    noisy_v, noisy_a, sigma = noisy_shot(2, seed=seed + 1)
    vv, va = velocity(graphdef, params, noisy_v, noisy_a, sigma, shot, inputs.refs, init_state(SC, 2))
    video_in, audio_in = _backbone_inputs(shot, N_FRAMES, N_AUDIO, noisy_v, noisy_a, sigma)
    bgraph, bparams = backbone_split(graphdef, params)
    ours = forward(bgraph, bparams, video_in, audio_in, None, EXEC)

    def numpy_stream(s: StreamInput) -> StreamInputs:
        return StreamInputs(**{f.name: np.array(getattr(s, f.name)) for f in dataclasses.fields(StreamInputs)})

    case = VerifyCase("story-shot0", numpy_stream(video_in), numpy_stream(audio_in), ((), ()))
    ref32 = run_reference(load_reference(src, "float32"), case, "float32")
    ref64 = run_reference(load_reference(src, "float64"), case, "float64")
    story_v = np.asarray(vv[:, :N_FRAMES].reshape(2, N_FRAMES * SC.frame_tokens, -1))
    return (story_v, np.asarray(va[:, :N_AUDIO])), ref32, ref64, tuple(map(np.asarray, ours))


def test_shot0_parity_chain_into_ltx_core(converted):
    """converted ltx-core checkpoint → story model backbone: shot 0 (no memory) equals our plain backbone on the
    shot's own tokens, and meets the parity criterion against ltx-core's `LTXModel` on the same tokens / positions
    / timesteps / context. On these inputs (σ near 0.9, std-normal latents) fp32 itself is the limit: ltx-core's
    fp32 is ~8e-5 × max|ref| from its float64 run, so the bound is the reference's own fp32 error
    (`parity_criterion`), not 2e-5."""
    pytest.importorskip("torch")
    pytest.importorskip("ltx_core")
    from unityshots_jax.parity_criterion import assert_parity

    (sv, sa), (rv, ra), (tv, ta), (ov, oa) = _ltx_core_shot0(converted, seed=11)
    assert np.max(np.abs(rv)) > 0.1 and np.max(np.abs(ra)) > 0.1
    assert rel_err(sv, ov) < 1e-6 and rel_err(sa, oa) < 1e-6  # the story wrapper adds nothing
    assert_parity("story shot 0 video", sv, rv, tv)
    assert_parity("story shot 0 audio", sa, ra, ta)


