"""Story-model components: the gate and recurrence equations, Strata-RoPE positions, masks and timesteps of every
block of a shot's sequence, and the cut-type prior. Tiny model; fixtures in helpers/story_fixtures.py."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from helpers.inputs import video_positions as independent_video_positions
from unityshots_jax.story import boundary_gate, cut_prior, shot_sequence, strata_rope
from unityshots_jax.story.boundary_gate import StmRefinement
from unityshots_jax.story.shot_sequence import I2V, R2V, T2V, References, ShotConditioning
from unityshots_jax.story.story_config import GateConfig, StoryConfig
from unityshots_jax.story.story_model import memory_gains
from unityshots_jax.story.story_state import StoryState, enter_shot, finish_shot, init_state
from helpers.story_fixtures import (
    DV,
    DA,
    SC,
    FRAME,
    default_model,
    with_memory_tables,
    velocity,
    rel_err,
    noisy_shot,
    _shot_zero,
    N_FRAMES,
    N_AUDIO,
)


# ------------------------------------------------------------------------------- 4. gate and recurrence
B4 = np.array([0.0, 0.25, 0.5, 1.0], np.float32)


def test_gate_coefficients_boundary_score_and_write_weight():
    gate = GateConfig()
    g_ltm, g_stm = boundary_gate.gate_coefficients(jnp.asarray(B4), gate)
    np.testing.assert_allclose(g_ltm, 0.1 + 0.6 * B4, atol=1e-7)
    np.testing.assert_allclose(g_stm, 0.3 + 0.7 * B4, atol=1e-7)
    np.testing.assert_allclose(g_ltm, [0.1, 0.25, 0.4, 0.7], atol=1e-7)
    np.testing.assert_allclose(g_stm, [0.3, 0.475, 0.65, 1.0], atol=1e-7)
    np.testing.assert_allclose(boundary_gate.ltm_write_weight(jnp.asarray(B4), gate), B4, atol=0)
    np.testing.assert_allclose(boundary_gate.ltm_write_weight(jnp.asarray([-0.5, 1.5]), gate), [0.0, 1.0])
    np.testing.assert_allclose(
        boundary_gate.ltm_write_weight(jnp.asarray(B4), dataclasses.replace(gate, z_max=0.8)), 0.8 * B4, atol=1e-7)

    rng = np.random.default_rng(0)
    s_vis, s_aud = rng.uniform(0, 1, 64).astype(np.float32), rng.uniform(0, 1, 64).astype(np.float32)
    s_beat = rng.choice(np.float32([0.25, 0.5, 1.0]), 64)
    tau = rng.choice(np.float32([0.0, 0.4, 1.0]), 64)
    for alpha, beta, gamma in ((0.5, 0.3, 0.0), (0.5, 0.3, 1.0)):  # cinematic, music video
        g = GateConfig(alpha=alpha, beta=beta, gamma=gamma)
        got = boundary_gate.boundary_score(*map(jnp.asarray, (tau, s_vis, s_aud, s_beat)), g)
        want = np.clip(tau * (alpha * s_vis + beta * s_aud + gamma * s_beat), 0, 1)
        np.testing.assert_allclose(got, want, atol=1e-6)
    music = GateConfig(gamma=1.0)
    one = jnp.ones(1)
    assert float(boundary_gate.boundary_score(one, one, one, one, music)[0]) == 1.0  # 1.8 clipped
    np.testing.assert_allclose(boundary_gate.boundary_score(0.4 * one, one, one, one, GateConfig()), [0.32], atol=1e-6)
    assert float(boundary_gate.boundary_score(0 * one, one, one, one, music)[0]) == 0.0  # FIRST: envelope 0


def test_memory_recurrence_follows_eq3_and_padding_is_inert():
    rng = np.random.default_rng(3)
    b = 4
    n0 = jnp.asarray([5, 6, 4, 5], jnp.int32)  # n_frames < video_frames for most stories
    n1 = jnp.asarray([6, 4, 5, 6], jnp.int32)
    yes = jnp.ones((b,), bool)
    lat0 = jnp.asarray(rng.standard_normal((b, SC.video_frames, *FRAME)), jnp.float32)
    lat1 = jnp.asarray(rng.standard_normal((b, SC.video_frames, *FRAME)), jnp.float32)
    bnd = jnp.asarray(B4)

    s = init_state(SC, b)
    s = enter_shot(s, bnd, yes, SC)  # shot 0: nothing to write
    assert not np.any(np.asarray(s.ltm)) and not np.any(np.asarray(s.has_memory))
    s = finish_shot(s, lat0, n0, yes, SC)
    for i in range(b):
        n = int(n0[i])
        np.testing.assert_array_equal(s.tail[i], lat0[i, n - 4 : n])  # last 4 *valid* frames
        np.testing.assert_allclose(s.prev_pool[i], lat0[i, :n].mean(axis=(0, 1, 2)), atol=1e-6)
    np.testing.assert_array_equal(s.shots_done, [1] * b)
    tail0 = s.tail

    s1 = enter_shot(s, bnd, yes, SC)  # entering shot 1: L = h(tail of shot 0), whatever b
    np.testing.assert_array_equal(s1.ltm, tail0[:, -2:])
    for i in range(b):
        n = int(n0[i])
        np.testing.assert_array_equal(s1.ltm[i], lat0[i, n - 2 : n])
    np.testing.assert_array_equal(s1.tail, tail0)  # the STM source is untouched by enter_shot
    s2 = finish_shot(s1, lat1, n1, yes, SC)
    s2e = enter_shot(s2, bnd, yes, SC)  # entering shot 2: L ← z·h(tail) + (1 − z)·L, z = b
    z = np.asarray(B4).reshape(-1, 1, 1, 1, 1)
    want = z * np.asarray(s2.tail[:, -2:]) + (1 - z) * np.asarray(s1.ltm)
    np.testing.assert_allclose(s2e.ltm, want, atol=1e-6)
    np.testing.assert_array_equal(s2e.ltm[0], s1.ltm[0])  # b = 0 keeps the anchor
    np.testing.assert_allclose(s2e.ltm[3], s2.tail[3, -2:], atol=1e-6)  # b = 1 takes the new tail
    for i in range(b):
        n = int(n1[i])
        np.testing.assert_array_equal(s2.tail[i], lat1[i, n - 4 : n])

    # padding shots (valid = False) leave every field unchanged
    no = jnp.zeros((b,), bool)
    for start in (init_state(SC, b), s, s2):
        same = finish_shot(enter_shot(start, jnp.ones((b,)), no, SC), lat1, n1, no, SC)
        for name in ("ltm", "tail", "prev_pool", "shots_done"):
            np.testing.assert_array_equal(getattr(same, name), getattr(start, name))
    # mixed: only the valid story changes
    mixed = jnp.asarray([True, False, True, False])
    m = finish_shot(enter_shot(s2, bnd, mixed, SC), lat0, n0, mixed, SC)
    np.testing.assert_array_equal(m.shots_done, [3, 2, 3, 2])
    np.testing.assert_array_equal(m.ltm[1], s2.ltm[1])
    np.testing.assert_array_equal(m.tail[3], s2.tail[3])


def test_content_aware_rho_init_clamp_and_rule_gate():
    rng = np.random.default_rng(4)
    prev = jnp.asarray(rng.standard_normal((3, 16)), jnp.float32)
    noisy = jnp.asarray(rng.standard_normal((3, 16)), jnp.float32)
    strength = jnp.asarray([0.0, 0.4, 1.0])
    priors = SC.cut_priors
    with nnx.use_eager_sharding(False):
        ref = StmRefinement(16, GateConfig(), priors, nnx.Rngs(0))
        clamped = StmRefinement(16, GateConfig(rho_clamp=True), priors, nnx.Rngs(0))
    rho = ref(prev, noisy, strength)
    np.testing.assert_allclose(rho, 1 / (1 + np.exp(-4.6)), atol=1e-6)
    assert np.all(np.asarray(rho) > 0.989)
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(ref)))
    assert n_params < 50_000
    for module in (ref, clamped):
        module.out.bias[...] = jnp.full((1,), -6.0)  # a collapsed gate
        module.out.kernel[...] = 0.01 * jnp.ones_like(module.out.kernel[...])
    low = ref(prev, noisy, strength)
    assert np.all(np.asarray(low) < 0.01)
    np.testing.assert_allclose(clamped(prev, noisy, strength), 0.5)  # clamped to [0.5, 1]
    for module in (ref, clamped):
        module.out.bias[...] = jnp.full((1,), 8.0)
    hi = clamped(prev, noisy, strength)
    assert np.all((np.asarray(hi) > 0.99) & (np.asarray(hi) <= 1.0))

    # memory_gains: (g_ltm, ρ·g_stm, ρ); learned_rho=False → ρ = 1 (the rule gate)
    shot = SimpleNamespace(boundary=jnp.asarray([0.0, 0.5, 1.0]), n_frames=jnp.asarray([4, 5, 6]),
                           cut_strength=strength)
    state = init_state(SC, 3).replace(prev_pool=prev)
    noisy_video = jnp.asarray(rng.standard_normal((3, SC.video_frames, *FRAME)), jnp.float32)
    with nnx.use_eager_sharding(False):
        fresh = StmRefinement(16, GateConfig(), priors, nnx.Rngs(1))
    learned = SimpleNamespace(story_cfg=SC, memory=SimpleNamespace(stm_refinement=fresh))
    g_ltm, g_stm, rho = memory_gains(learned, noisy_video, shot, state)
    np.testing.assert_allclose(g_ltm, [0.1, 0.4, 0.7], atol=1e-6)
    np.testing.assert_allclose(g_stm, np.array([0.3, 0.65, 1.0]) * np.asarray(rho), atol=1e-6)
    np.testing.assert_allclose(rho, 1 / (1 + np.exp(-4.6)), atol=1e-6)
    rule_cfg = dataclasses.replace(SC, gate=GateConfig(learned_rho=False))
    rule = SimpleNamespace(story_cfg=rule_cfg, memory=SimpleNamespace(stm_refinement=ref))  # ref would give ρ ≈ 1
    g_ltm, g_stm, rho = memory_gains(rule, noisy_video, shot, state)
    np.testing.assert_array_equal(rho, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(g_stm, [0.3, 0.65, 1.0], atol=1e-6)


# ---------------------------------------------------------------------------------------- 5. Strata-RoPE
def test_build_inputs_positions_masks_and_timesteps_of_every_block():
    b = 3
    rng = np.random.default_rng(9)
    ft, p = SC.frame_tokens, SC.stm_frames
    n_frames = np.array([5, 6, 4])
    n_audio = np.array([6, 8, 3])
    modes = np.array([R2V, I2V, T2V])
    shot = ShotConditioning(
        video_context=jnp.asarray(rng.standard_normal((b, 4, DV)), jnp.float32),
        audio_context=jnp.asarray(rng.standard_normal((b, 4, DA)), jnp.float32),
        context_mask=jnp.ones((b, 4), jnp.int32),
        mode=jnp.asarray(modes, jnp.int32),
        first_frame=jnp.asarray(rng.standard_normal((b, *FRAME)), jnp.float32),
        n_frames=jnp.asarray(n_frames, jnp.int32),
        n_audio=jnp.asarray(n_audio, jnp.int32),
        cut_strength=jnp.asarray([0.0, 0.4, 1.0]),
        boundary=jnp.asarray([0.0, 0.5, 1.0]),
        valid=jnp.ones((b,), bool),
    )
    ref_mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)
    refs = References(
        image=jnp.asarray(rng.standard_normal((b, 1, *FRAME)), jnp.float32),
        image_valid=jnp.ones((b,)),
        audio=jnp.asarray(rng.standard_normal((b, SC.ref_audio_frames, 16)), jnp.float32),
        audio_mask=jnp.asarray(ref_mask),
    )
    state = StoryState(
        ltm=jnp.asarray(rng.standard_normal((b, 2, *FRAME)), jnp.float32),
        tail=jnp.asarray(rng.standard_normal((b, 4, *FRAME)), jnp.float32),
        prev_pool=jnp.zeros((b, 16)),
        shots_done=jnp.asarray([0, 2, 1], jnp.int32),  # story 0 is at shot 0: memory hidden
    )
    noisy_v, noisy_a, sigma = noisy_shot(b, seed=10)
    g_ltm, g_stm = jnp.asarray([0.1, 0.4, 0.7]), jnp.asarray([0.3, 0.6, 0.9])
    offsets = (jnp.ones((b, DV)), jnp.ones((b, DA)))
    video, audio = shot_sequence.build_inputs(SC, noisy_v, noisy_a, sigma, shot, refs, state, g_ltm, g_stm, offsets)

    nv_tok = SC.video_tokens
    assert nv_tok == ft * (6 + 1 + 2 + 4)
    assert video.positions.shape == (b, 3, nv_tok, 2) and video.latent.shape == (b, nv_tok, 16)
    blocks = {"shot": (0, 6 * ft), "ref_image": (6 * ft, 7 * ft), "ltm": (7 * ft, 9 * ft), "stm": (9 * ft, 13 * ft)}
    pos = np.asarray(video.positions, np.float64)

    def frame_rows(frame_idx):
        """Expected [3, F·H·W, 2] bounds for the given latent frame indices (frame-major, then h, then w)."""
        rows = []
        for f in frame_idx:
            for h in range(SC.height):
                for w in range(SC.width):
                    rows.append([[max(0, 8 * f - 7) / 24.0, (8 * f + 1) / 24.0], [32 * h, 32 * h + 32],
                                 [32 * w, 32 * w + 32]])
        return np.transpose(np.array(rows, np.float64), (1, 0, 2))

    for i in range(b):
        expected = {
            "shot": range(6),
            "ref_image": [n_frames[i]],  # the gap right after the shot's valid frames
            "ltm": [SC.frame_limit - 2 * p, SC.frame_limit - 2 * p + 1],  # 24, 25
            "stm": range(SC.frame_limit - p, SC.frame_limit),  # 28 … 31
        }
        for name, (lo, hi) in blocks.items():
            np.testing.assert_allclose(pos[i, :, lo:hi], frame_rows(expected[name]), rtol=1e-6, err_msg=name)
    # the shot block is the backbone's ordinary grid (an independent implementation)
    np.testing.assert_allclose(pos[:, :, : 6 * ft], independent_video_positions(b, 6, 2, 3), rtol=1e-6)
    np.testing.assert_allclose(pos[0, 0, 7 * ft], [(8 * 24 - 7) / 24, (8 * 24 + 1) / 24], rtol=1e-6)  # LTM frame 24

    # video latents: shot, reference image, gated LTM, gated STM
    lat = np.asarray(video.latent)
    np.testing.assert_array_equal(lat[:, : 6 * ft], np.asarray(noisy_v).reshape(b, -1, 16))
    np.testing.assert_array_equal(lat[:, 6 * ft : 7 * ft], np.asarray(refs.image).reshape(b, -1, 16))
    np.testing.assert_allclose(lat[:, 7 * ft : 9 * ft],
                               np.asarray(g_ltm)[:, None, None] * np.asarray(state.ltm).reshape(b, -1, 16), atol=1e-6)
    np.testing.assert_allclose(lat[:, 9 * ft :],
                               np.asarray(g_stm)[:, None, None] * np.asarray(state.tail).reshape(b, -1, 16), atol=1e-6)

    # token masks: valid shot frames; reference image only in R2V; memory hidden at shot 0
    tm = np.asarray(video.token_mask)
    for i in range(b):
        np.testing.assert_array_equal(tm[i, : 6 * ft], np.repeat(np.arange(6) < n_frames[i], ft))
    np.testing.assert_array_equal(tm[:, 6 * ft : 7 * ft].max(1), [1, 0, 0])
    np.testing.assert_array_equal(tm[:, 6 * ft : 7 * ft].min(1), [1, 0, 0])
    np.testing.assert_array_equal(tm[:, 7 * ft :].max(1), [0, 1, 1])
    np.testing.assert_array_equal(tm[:, 7 * ft :].min(1), [0, 1, 1])
    # timesteps: σ on the noisy shot, 0 on an I2V first frame and on every clean block
    ts = np.asarray(video.timesteps)
    sg = np.asarray(sigma)
    assert ts.shape == (b, nv_tok)
    np.testing.assert_allclose(ts[0, : 6 * ft], sg[0])
    np.testing.assert_allclose(ts[2, : 6 * ft], sg[2])
    np.testing.assert_array_equal(ts[1, :ft], 0.0)
    np.testing.assert_allclose(ts[1, ft : 6 * ft], sg[1])
    np.testing.assert_array_equal(ts[:, 6 * ft :], 0.0)
    np.testing.assert_allclose(video.sigma, sg)
    np.testing.assert_array_equal(video.timestep_offset, offsets[0])
    np.testing.assert_array_equal(video.context, shot.video_context)

    # audio: the shot's latents at 0 … Fa − 1, the reference voice at n_audio + j; bounds max(0, 4i − 3)·10 ms
    fa, fr = SC.audio_frames, SC.ref_audio_frames
    apos = np.asarray(audio.positions, np.float64)
    assert apos.shape == (b, 1, fa + fr, 2)

    def audio_rows(idx):
        return np.array([[[max(0, 4 * i - 3) * 0.01, (4 * i + 1) * 0.01] for i in idx]])

    for i in range(b):
        np.testing.assert_allclose(apos[i, :, :fa], audio_rows(range(fa)), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(apos[i, :, fa:], audio_rows(range(n_audio[i], n_audio[i] + fr)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(audio.latent)[:, :fa], np.asarray(noisy_a))
    np.testing.assert_array_equal(np.asarray(audio.latent)[:, fa:], np.asarray(refs.audio))
    atm = np.asarray(audio.token_mask)
    for i in range(b):
        np.testing.assert_array_equal(atm[i, :fa], np.arange(fa) < n_audio[i])
    np.testing.assert_array_equal(atm[:, fa:], ref_mask)
    ats = np.asarray(audio.timesteps)
    np.testing.assert_allclose(ats[:, :fa], np.broadcast_to(sg[:, None], (b, fa)))
    np.testing.assert_array_equal(ats[:, fa:], 0.0)
    np.testing.assert_array_equal(audio.timestep_offset, offsets[1])

    # a T2V shot with a reference image keeps it hidden; the loss never covers clean / padded tokens
    lv, la = shot_sequence.loss_masks(shot, SC)
    assert float(lv[1, 0].sum()) == 0.0 and float(lv[1, 1].sum()) == ft
    assert float(lv[0, 5].sum()) == 0.0 and float(lv[0, 4].sum()) == ft
    np.testing.assert_array_equal(la.sum(1), n_audio)


def test_sequence_indices_helpers():
    idx = strata_rope.sequence_frame_indices(jnp.asarray([4, 6]), SC)
    np.testing.assert_array_equal(idx["shot"], [list(range(6))] * 2)
    np.testing.assert_array_equal(idx["ref_image"], [[4], [6]])
    np.testing.assert_array_equal(idx["ltm"], [[24, 25]] * 2)
    np.testing.assert_array_equal(idx["stm"], [[28, 29, 30, 31]] * 2)
    paper = StoryConfig()  # f_lim 128, P 4: STM 124–127, LTM in 120–123
    idx = strata_rope.sequence_frame_indices(jnp.asarray([16]), paper)
    np.testing.assert_array_equal(idx["stm"], [[124, 125, 126, 127]])
    np.testing.assert_array_equal(idx["ltm"], [[120, 121]])
    aidx = strata_rope.sequence_audio_indices(jnp.asarray([5]), SC)
    np.testing.assert_array_equal(aidx["shot"], [list(range(8))])
    np.testing.assert_array_equal(aidx["ref_audio"], [[5, 6, 7, 8]])


# ---------------------------------------------------------------------------------------- 6. cut prior
@pytest.mark.parametrize(
    "name,canonical",
    [("FIRST", "FIRST"), ("first-shot", "FIRST"), ("Opening", "FIRST"), ("DISSOLVE", "CONTINUE"),
     ("crossfade", "CONTINUE"), ("continue cut", "CONTINUE"), ("Match_Cut", "CONTINUE"), ("HARD-CUT", "HARD"),
     ("hard cut", "HARD"), ("smash_cut", "HARD"), (" fade to black ", "HARD"), ("WIPE", "HARD")],
)
def test_cut_names_and_aliases(name, canonical):
    assert cut_prior.canonical_cut(name) == canonical
    assert cut_prior.cut_strength(name) == {"FIRST": 0.0, "CONTINUE": 0.4, "HARD": 1.0}[canonical]


def test_unknown_cut_name_is_named():
    with pytest.raises(ValueError, match="IRIS_IN"):
        cut_prior.canonical_cut("IRIS_IN")
    with pytest.raises(ValueError, match="'spin'"):
        cut_prior.cut_strength("spin")
    assert cut_prior.cut_strength("DISSOLVE", (0.0, 0.5, 1.0)) == 0.5


def test_cut_embedding_interpolates_class_rows():
    with nnx.use_eager_sharding(False):
        emb = cut_prior.CutEmbedding(5, (0.0, 0.4, 1.0))
    np.testing.assert_array_equal(emb(jnp.asarray([0.0, 0.7, 1.0])), np.zeros((3, 5)))  # zero-initialised
    table = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    emb.table[...] = jnp.asarray(table)
    out = np.asarray(emb(jnp.asarray([0.0, 0.4, 1.0, 0.7, 0.2, 0.1])))
    np.testing.assert_allclose(out[0], table[0], atol=1e-6)
    np.testing.assert_allclose(out[1], table[1], atol=1e-6)
    np.testing.assert_allclose(out[2], table[2], atol=1e-6)
    np.testing.assert_allclose(out[3], (table[1] + table[2]) / 2, atol=1e-6)  # midpoint of CONTINUE and HARD
    np.testing.assert_allclose(out[4], (table[0] + table[1]) / 2, atol=1e-6)
    np.testing.assert_allclose(out[5], 0.75 * table[0] + 0.25 * table[1], atol=1e-6)
    w = np.asarray(cut_prior.interpolation_weights(jnp.linspace(0, 1, 11), (0.0, 0.4, 1.0)))
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-6)
    assert np.all(w >= 0)


def test_cut_embedding_zero_is_invisible_nonzero_changes_both_streams():
    graphdef, params = default_model()
    b = 2
    inputs, shot = _shot_zero(["t2v", "t2v"], [N_FRAMES] * 2, [N_AUDIO] * 2, cut=[0.0, 0.0], seed=21)
    noisy_v, noisy_a, sigma = noisy_shot(b, seed=22)
    state = init_state(SC, b)

    def run(p, strength):
        s = shot.replace(cut_strength=jnp.full((b,), strength, jnp.float32))
        return velocity(graphdef, p, noisy_v, noisy_a, sigma, s, inputs.refs, state)

    base_v, base_a = run(params, 0.0)
    for strength in (0.4, 0.7, 1.0):  # zero tables: the knob does nothing (and 3a: equals the plain backbone)
        v, a = run(params, strength)
        np.testing.assert_array_equal(v, base_v)
        np.testing.assert_array_equal(a, base_a)
    rng = np.random.default_rng(23)
    nonzero = with_memory_tables(params, 0.5 * rng.standard_normal((3, DV)), 0.5 * rng.standard_normal((3, DA)))
    hard_v, hard_a = run(nonzero, 1.0)
    assert rel_err(hard_v[:, :N_FRAMES], base_v[:, :N_FRAMES]) > 1e-3
    assert rel_err(hard_a[:, :N_AUDIO], base_a[:, :N_AUDIO]) > 1e-3
    cont_v, cont_a = run(nonzero, 0.4)
    assert rel_err(cont_v[:, :N_FRAMES], hard_v[:, :N_FRAMES]) > 1e-3
    assert rel_err(cont_a[:, :N_AUDIO], hard_a[:, :N_AUDIO]) > 1e-3
    # a table of its own per stream: a non-zero video row alone changes the video stream directly
    video_only = with_memory_tables(params, 0.5 * rng.standard_normal((3, DV)), np.zeros((3, DA)))
    vo_v, _ = run(video_only, 1.0)
    assert rel_err(vo_v[:, :N_FRAMES], base_v[:, :N_FRAMES]) > 1e-3

