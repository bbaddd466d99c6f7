"""unityshots_jax.ltx.sampling against the ltx-core 1.0.0 pieces it ports: LTX2Scheduler, EulerDiffusionStep,
to_velocity, GaussianNoiser, MultiModalGuider; and `ltx.sampler.denoise_loop` — the loop the story sampler
(`story/shot_scan.py`) runs — against ltx-pipelines' Euler loop and guider skip_step written out with ltx-core's
pieces, on one and two streams."""

from __future__ import annotations

import os

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from ltx_core.components.diffusion_steps import EulerDiffusionStep  # noqa: E402
from ltx_core.components.guiders import MultiModalGuider, MultiModalGuiderParams  # noqa: E402
from ltx_core.components.noisers import GaussianNoiser  # noqa: E402
from ltx_core.components.patchifiers import VideoLatentPatchifier  # noqa: E402
from ltx_core.components.schedulers import LTX2Scheduler  # noqa: E402
from ltx_core.conditioning.types.latent_cond import VideoConditionByLatentIndex  # noqa: E402
from ltx_core.tools import VideoLatentTools  # noqa: E402
from ltx_core.types import VideoLatentShape  # noqa: E402
from ltx_core.utils import to_velocity as ref_to_velocity  # noqa: E402

from unityshots_jax.ltx import sampling as S  # noqa: E402
from unityshots_jax.ltx.sampler import SamplerConfig, denoise_loop  # noqa: E402

RTOL = 1e-6
ATOL = 1e-6

# Appendix B of the architecture reference: LTX2Scheduler, 30 steps (6 decimals).
APPENDIX_B_30 = [
    1.0, 0.994957, 0.989603, 0.983908, 0.977840, 0.971358, 0.964421, 0.956978, 0.948972, 0.940336, 0.930994,
    0.920854, 0.909810, 0.897735, 0.884479, 0.869858, 0.853651, 0.835584, 0.815319, 0.792427, 0.766363, 0.736418,
    0.701656, 0.660813, 0.612141, 0.553148, 0.480164, 0.387541, 0.266120, 0.1, 0.0,
]  # fmt: skip


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a).copy())


def _close(ours, ref, rtol=RTOL, atol=ATOL):
    ours = np.asarray(ours, np.float32)
    ref = ref.float().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref, np.float32)
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol)


def _ulps(a: np.ndarray, b: np.ndarray) -> int:
    ai = a.astype(np.float32).view(np.int32).astype(np.int64)
    bi = b.astype(np.float32).view(np.int32).astype(np.int64)
    return int(np.max(np.abs(ai - bi)))


# ------------------------------------------------------------------------------------------------ schedules


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 9, 30, 40, 57])
@pytest.mark.parametrize("kwargs", [{}, {"stretch": False}, {"terminal": 0.05, "max_shift": 1.5}])
def test_ltx2_sigmas_match_scheduler(steps, kwargs):
    ours = S.ltx2_sigmas(steps, **kwargs)
    ref = LTX2Scheduler().execute(steps, **kwargs).numpy()
    assert ours.dtype == np.float32 and ours.shape == (steps + 1,)
    assert ours[-1] == 0.0
    # σ_0 is e/(e + 0) computed as reciprocal(e)·e, and 1 − (1−σ)/scale after stretching: not exactly 1.0
    # (0.9999995 for 30 steps); with one step, stretching maps the only non-zero sigma to `terminal`.
    # With one step that sigma can even round to exactly 1.0, and the stretch is then 0/0 = NaN (as in ltx-core).
    if not np.isnan(ref[0]):
        want = 1.0 if steps > 1 or kwargs.get("stretch") is False else kwargs.get("terminal", 0.1)
        assert abs(ours[0] - want) < 1e-6
    assert _ulps(ours, ref) <= 1, (ours, ref)
    np.testing.assert_array_equal(ours, ref)  # bit-exact on x86 (torch's linspace rounding is reproduced)


def test_ltx2_sigmas_token_shift():
    latent = torch.zeros(1, 128, 3, 8, 12)  # 288 tokens, well below the 1024 anchor: shift < base_shift
    ref = LTX2Scheduler().execute(8, latent=latent).numpy()
    np.testing.assert_array_equal(S.ltx2_sigmas(8, tokens=3 * 8 * 12), ref)


def test_ltx2_sigmas_appendix_b():
    ours = S.ltx2_sigmas(30)
    np.testing.assert_allclose(ours, np.array(APPENDIX_B_30, np.float32), atol=6e-7)
    assert abs(ours[-2] - 0.1) < 1e-7  # 0.100000024: the stretch lands on the terminal only to rounding


def test_distilled_sigmas():
    assert S.distilled_sigmas(1).tolist() == torch.tensor(
        [1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0]
    ).tolist()
    assert S.distilled_sigmas(2).tolist() == S.distilled_sigmas(1)[-4:].tolist()


# ------------------------------------------------------------------------------------------------ steps


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_euler_step_and_velocity(dtype):
    rng = np.random.default_rng(0)
    sigmas = S.ltx2_sigmas(8)
    x = rng.standard_normal((2, 24, 16)).astype(np.float32)
    x0 = rng.standard_normal((2, 24, 16)).astype(np.float32)
    tdt = getattr(torch, dtype)
    xt, x0t = _t(x).to(tdt), _t(x0).to(tdt)
    xj, x0j = jnp.asarray(x).astype(dtype), jnp.asarray(x0).astype(dtype)
    step = jax.jit(S.euler_step)
    stepper = EulerDiffusionStep()
    # float32: ≤ 1 ulp on many elements (XLA's reciprocal-multiply and FMA vs torch's separate roundings).
    # bfloat16: those ulps flip a bf16 rounding on a tiny fraction of the elements, by one bf16 ulp (≤ 2^-7 rel).
    rtol = RTOL if dtype == "float32" else 2**-7
    for i in range(len(sigmas) - 1):
        ref = stepper.step(xt, x0t, _t(sigmas), i)
        ours = step(xj, x0j, sigmas[i], sigmas[i + 1])
        assert ours.dtype == xj.dtype
        _close(ours, ref, rtol=rtol)
        if dtype == "bfloat16":
            assert np.mean(np.asarray(ours, np.float32) != ref.float().numpy()) < 0.01
        _close(S.to_velocity(xj, sigmas[i], x0j), ref_to_velocity(xt, _t(sigmas)[i], x0t), rtol=rtol)


def test_euler_step_inside_scan_uses_scalar_sigmas():
    """The step is jit/scan friendly: a traced sigma gives the same result as the Python float."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((1, 8, 4)), jnp.float32)
    x0 = jnp.asarray(rng.standard_normal((1, 8, 4)), jnp.float32)
    sig = S.ltx2_sigmas(3)
    out, _ = jax.lax.scan(lambda c, s: (S.euler_step(c, x0, s[0], s[1]), None), x, jnp.stack([sig[:-1], sig[1:]], 1))
    ref = x
    for i in range(3):
        ref = S.euler_step(ref, x0, float(sig[i]), float(sig[i + 1]))
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), rtol=RTOL, atol=ATOL)


def test_post_process_and_add_noise():
    rng = np.random.default_rng(2)
    shape = (2, 20, 8)
    x0, clean, noise = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    mask = rng.choice([0.0, 0.25, 1.0], size=(2, 20, 1)).astype(np.float32)
    ref_pp = _t(x0) * _t(mask) + _t(clean).float() * (1 - _t(mask))  # ltx_pipelines.utils.helpers.post_process_latent
    _close(S.post_process(jnp.asarray(x0), jnp.asarray(clean), jnp.asarray(mask)), ref_pp)

    from ltx_core.types import LatentState

    for scale in (1.0, 0.909375):
        gen = torch.Generator().manual_seed(5)
        state = LatentState(latent=_t(clean), denoise_mask=_t(mask), positions=torch.zeros(1), clean_latent=_t(clean))
        ref = GaussianNoiser(gen)(state, noise_scale=scale).latent
        drawn = torch.randn(*shape, generator=torch.Generator().manual_seed(5), dtype=torch.float32)
        ours = S.add_noise(jnp.asarray(clean), jnp.asarray(drawn.numpy()), jnp.asarray(mask), scale)
        _close(ours, ref)
    # conditioned tokens (mask 0) stay clean
    full = S.add_noise(jnp.asarray(clean), jnp.asarray(noise), jnp.asarray(mask))
    keep = mask[..., 0] == 0
    np.testing.assert_array_equal(np.asarray(full)[keep], clean[keep])


# ------------------------------------------------------------------------------------------------ guidance

SCALES = {  # (cfg, stg, modality): each pass on / off
    "uncond": [1.0, 3.0],
    "perturbed": [0.0, 1.0],
    "isolated": [1.0, 3.0],
}


@pytest.mark.parametrize("rescale", [0.0, 0.7])
def test_guided_x0_all_pass_combinations(rescale):
    rng = np.random.default_rng(3)
    shape = (2, 16, 8)
    c, u, p, i = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    fn = jax.jit(S.guided_x0, static_argnames=("cfg", "stg", "modality", "rescale"))
    for cfg, stg, mod in itertools.product(SCALES["uncond"], SCALES["perturbed"], SCALES["isolated"]):
        gp = S.GuidanceParams(cfg=cfg, stg=stg, modality=mod, rescale=rescale)
        guider = MultiModalGuider(
            MultiModalGuiderParams(cfg_scale=cfg, stg_scale=stg, modality_scale=mod, rescale_scale=rescale)
        )
        assert gp.needs_uncond == guider.do_unconditional_generation()
        assert gp.needs_perturbed == guider.do_perturbed_generation()
        assert gp.needs_isolated == guider.do_isolated_modality_generation()
        # the pipelines pass 0.0 for a pass that was not run
        ref = guider.calculate(
            _t(c),
            _t(u) if gp.needs_uncond else 0.0,
            _t(p) if gp.needs_perturbed else 0.0,
            _t(i) if gp.needs_isolated else 0.0,
        )
        needs = (gp.needs_uncond, gp.needs_perturbed, gp.needs_isolated)
        args = [jnp.asarray(a) if need else None for a, need in zip((u, p, i), needs)]
        ours = fn(jnp.asarray(c), *args, cfg=cfg, stg=stg, modality=mod, rescale=rescale)
        _close(ours, ref)
        _close(gp.apply(jnp.asarray(c), *args), ref)
        # all passes present (as in a joint A/V step where the other stream needed them): same result
        _close(S.guided_x0(*map(jnp.asarray, (c, u, p, i)), cfg=cfg, stg=stg, modality=mod, rescale=rescale),
               guider.calculate(_t(c), _t(u), _t(p), _t(i)))  # fmt: skip
        # traced scales give the same result
        traced = jax.jit(lambda a, b, d, e, s: S.guided_x0(a, b, d, e, cfg=s[0], stg=s[1], modality=s[2], rescale=s[3]))
        _close(traced(*map(jnp.asarray, (c, u, p, i)), jnp.asarray([cfg, stg, mod, rescale], jnp.float32)),
               guider.calculate(_t(c), _t(u), _t(p), _t(i)))  # fmt: skip


def test_guided_x0_rescale_std_is_global_and_unbiased():
    """std over the whole tensor (both batch samples), not per sample. (n−1 vs n cancels in the std ratio.)"""
    rng = np.random.default_rng(4)
    c = rng.standard_normal((2, 6, 3)).astype(np.float32)
    c[1] *= 5.0
    u = rng.standard_normal((2, 6, 3)).astype(np.float32)
    guider = MultiModalGuider(MultiModalGuiderParams(cfg_scale=4.0, rescale_scale=1.0))
    ref = guider.calculate(_t(c), _t(u), 0.0, 0.0)
    ours = S.guided_x0(jnp.asarray(c), jnp.asarray(u), cfg=4.0, rescale=1.0)
    _close(ours, ref)
    pred = c + 3.0 * (c - u)
    per_sample = pred * (c.std(axis=(1, 2), ddof=1, keepdims=True) / pred.std(axis=(1, 2), ddof=1, keepdims=True))
    assert np.max(np.abs(per_sample - ref.numpy())) > 1e-2
    np.testing.assert_allclose(np.asarray(ours).std(ddof=1), c.std(ddof=1), rtol=1e-5)


def test_guided_x0_missing_pass_raises():
    c = jnp.ones((1, 2, 2))
    with pytest.raises(ValueError, match="uncond_text"):
        S.guided_x0(c, cfg=3.0)
    with pytest.raises(ValueError, match="perturbed"):
        S.guided_x0(c, stg=1.0)
    with pytest.raises(ValueError, match="isolated"):
        S.guided_x0(c, modality=2.0)
    np.testing.assert_array_equal(np.asarray(S.guided_x0(c)), np.asarray(c))


def _ltx_pipelines_constants():
    """`ltx_pipelines.utils.constants` (ltx-pipelines 1.0.0), loaded from its file: the package's `__init__` imports
    torchaudio, whose CPU wheel may not load, and the constants need none of it."""
    import importlib.util

    spec = importlib.util.find_spec("ltx_pipelines")
    if spec is None:
        pytest.skip("ltx-pipelines 1.0.0 is not installed (the `reference` extra)")
    path = os.path.join(spec.submodule_search_locations[0], "utils", "constants.py")
    module_spec = importlib.util.spec_from_file_location("_ltx_pipelines_constants", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_guidance_constants_are_the_ltx23_pipelines():
    params = _ltx_pipelines_constants().LTX_2_3_PARAMS
    for ours, theirs in ((S.LTX23_VIDEO, params.video_guider_params), (S.LTX23_AUDIO, params.audio_guider_params)):
        assert (ours.cfg, ours.stg, ours.modality, ours.rescale, list(ours.stg_blocks), ours.skip_step) == (
            theirs.cfg_scale, theirs.stg_scale, theirs.modality_scale, theirs.rescale_scale, theirs.stg_blocks,
            theirs.skip_step)
        assert ours.num_passes == 4


def test_guidance_passes():
    off = S.GuidanceParams()
    assert (off.needs_uncond, off.needs_perturbed, off.needs_isolated, off.num_passes) == (False, False, False, 1)
    assert S.needed_passes(off, S.GuidanceParams(stg=1e-12)) == (False, True, False)  # isclose(x, 0) is x == 0
    assert not S.GuidanceParams(cfg=1.0 + 1e-12).needs_uncond  # ... but isclose(x, 1) has rel tol 1e-9
    skip = S.GuidanceParams(skip_step=2)
    ref = MultiModalGuider(MultiModalGuiderParams(skip_step=2))
    assert [skip.should_skip_step(k) for k in range(7)] == [ref.should_skip_step(k) for k in range(7)]


# ------------------------------------------------------------------------------------------------ end to end


def test_euler_loop_with_first_frame_conditioning_matches_ltx_core():
    """4 guided Euler steps with a fixed fake denoiser and an I2V first-frame condition, vs ltx-core components."""
    shape = VideoLatentShape(batch=1, channels=8, frames=3, height=2, width=3)
    tools = VideoLatentTools(VideoLatentPatchifier(patch_size=1), shape, fps=24.0)
    first = torch.randn(1, 8, 1, 2, 3, generator=torch.Generator().manual_seed(11))
    state = tools.create_initial_state(torch.device("cpu"), torch.float32)
    state = VideoConditionByLatentIndex(first, strength=1.0, latent_idx=0).apply_to(state, tools)
    clean0, mask0 = state.clean_latent.clone(), state.denoise_mask.clone()
    state = GaussianNoiser(torch.Generator().manual_seed(12))(state, noise_scale=1.0)
    noise = torch.randn(*state.latent.shape, generator=torch.Generator().manual_seed(12))
    assert mask0[0, :6, 0].eq(0).all() and mask0[0, 6:, 0].eq(1).all()

    sigmas = S.ltx2_sigmas(4)
    params = S.LTX23_VIDEO
    guider = MultiModalGuider(
        MultiModalGuiderParams(
            cfg_scale=params.cfg, stg_scale=params.stg, modality_scale=params.modality,
            rescale_scale=params.rescale, stg_blocks=list(params.stg_blocks),
        )
    )  # fmt: skip

    def fake(x, sig):  # cond, uncond, perturbed, isolated x0 "predictions"
        return 0.5 * x, 0.4 * x + 0.1 * sig, 0.45 * x, 0.55 * x - 0.05

    # reference: ltx_pipelines' euler_denoising_loop, written out with ltx-core's guider and stepper
    stepper, x = EulerDiffusionStep(), state.latent
    sig_t = _t(sigmas)
    for k in range(len(sigmas) - 1):
        x0 = guider.calculate(*fake(x, sig_t[k]))
        x0 = (x0 * state.denoise_mask + state.clean_latent.float() * (1 - state.denoise_mask)).to(x0.dtype)
        x = stepper.step(x, x0, sig_t, k)
    ref = x

    # ours: add_noise + denoise_loop (lax.scan) + guided_x0
    clean, mask = jnp.asarray(clean0.numpy()), jnp.asarray(mask0.numpy())
    x_init = S.add_noise(clean, jnp.asarray(noise.numpy()), mask, 1.0)
    _close(x_init, state.latent)

    def denoise(xs, sig, _step):
        return (params.apply(*fake(xs[0], sig)),)

    loop = lambda x_, s_: denoise_loop(denoise, (x_,), s_, clean=(clean,), denoise_mask=(mask,))[0]  # noqa: E731
    ours = jax.jit(loop)(x_init, sigmas)
    _close(ours, ref)
    np.testing.assert_array_equal(np.asarray(ours)[0, :6], clean0.numpy()[0, :6])  # first frame stays clean


@pytest.mark.parametrize("skip_step", [0, 1, 2])
def test_two_stream_loop_with_skip_step_matches_the_pipelines(skip_step):
    """Video (first frame conditioned) and audio (unconditioned) through 6 Euler steps with guidance skip_step, vs
    ltx-pipelines' `multi_modal_guider_denoising_func` + `euler_denoising_loop` written out with ltx-core's guider
    (`should_skip_step`: reuse the previous guided x0, no model call) and stepper. Counts the model calls."""
    rng = np.random.default_rng(7)
    xv, clean_v = (rng.standard_normal((1, 6, 4)).astype(np.float32) for _ in range(2))
    xa = rng.standard_normal((1, 5, 3)).astype(np.float32)
    mask_v = np.ones((1, 6, 1), np.float32)
    mask_v[:, :2] = 0.0
    sigmas = S.ltx2_sigmas(6, tokens=3 * 6)
    video_p = S.GuidanceParams(cfg=3.0, rescale=0.7, skip_step=skip_step)
    audio_p = S.GuidanceParams(cfg=7.0, skip_step=skip_step)

    def guider(p):
        return MultiModalGuider(MultiModalGuiderParams(cfg_scale=p.cfg, rescale_scale=p.rescale, skip_step=p.skip_step))

    def fake(x, sig, scale):  # cond and uncond x0 "predictions" of one stream
        return scale * x + 0.1 * sig, (scale - 0.1) * x

    gv, ga, stepper, sig_t = guider(video_p), guider(audio_p), EulerDiffusionStep(), _t(sigmas)
    v, a, last, calls = _t(xv), _t(xa), None, 0
    for k in range(len(sigmas) - 1):
        if gv.should_skip_step(k) and ga.should_skip_step(k):
            x0v, x0a = last
        else:
            calls += 1
            x0v, x0a = gv.calculate(*fake(v, sig_t[k], 0.5), 0.0, 0.0), ga.calculate(*fake(a, sig_t[k], 0.3), 0.0, 0.0)
        last = (x0v, x0a)
        x0v = x0v * _t(mask_v) + _t(clean_v) * (1 - _t(mask_v))
        v, a = stepper.step(v, x0v, sig_t, k), stepper.step(a, x0a, sig_t, k)

    ours_calls = []

    def denoise(xs, sig, step):
        jax.debug.callback(lambda: ours_calls.append(1))
        return (video_p.apply(*fake(xs[0], sig, 0.5)), audio_p.apply(*fake(xs[1], sig, 0.3)))

    skip = S.joint_skip_step(video_p, audio_p)
    out_v, out_a = denoise_loop(denoise, (jnp.asarray(xv), jnp.asarray(xa)), sigmas, clean=(jnp.asarray(clean_v), None),
                                denoise_mask=(jnp.asarray(mask_v), None), skip_step=skip)  # fmt: skip
    jax.effects_barrier()
    _close(out_v, v)
    _close(out_a, a)
    assert len(ours_calls) == calls == len(range(0, 6, skip_step + 1))


def test_skip_step_must_agree_across_streams():
    with pytest.raises(ValueError, match="skip_step"):
        S.joint_skip_step(S.GuidanceParams(skip_step=1), S.GuidanceParams(skip_step=0))
    assert S.joint_skip_step(S.GuidanceParams(skip_step=2), S.GuidanceParams(skip_step=2)) == 2


def test_sampler_config_schedules_and_solvers():
    np.testing.assert_array_equal(SamplerConfig(steps=30).sigmas(), S.ltx2_sigmas(30))
    np.testing.assert_array_equal(SamplerConfig(steps=8, shift_tokens=288).sigmas(), S.ltx2_sigmas(8, tokens=288))
    distilled = SamplerConfig(schedule="distilled", steps=8).sigmas()
    assert distilled.tolist() == np.asarray([1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0],
                                            np.float32).tolist()  # Appendix B
    for bad, field in (({"solver": "res_2s"}, "solver"), ({"schedule": "karras"}, "schedule"), ({"steps": 0}, "steps"),
                       ({"schedule": "distilled", "steps": 20}, "steps")):
        with pytest.raises(ValueError, match=field):
            SamplerConfig(**bad)


def test_token_shift_is_the_schedulers_and_the_trainers():
    from unityshots_jax.train.timestep_sampling import token_shift as training_shift

    for tokens in (0, 288, 1024, 2500, 4096):
        assert training_shift(tokens) == S.token_shift(tokens)
    assert training_shift(10_000) == S.token_shift(4096) < S.token_shift(10_000)  # training caps, the scheduler not


def test_story_sampling_config_refuses_streams_that_skip_on_different_steps():
    from unityshots_jax.story.shot_scan import SamplingConfig

    with pytest.raises(ValueError, match="skip_step"):
        SamplingConfig(video=S.GuidanceParams(skip_step=1), audio=S.GuidanceParams())
    assert SamplingConfig(SamplerConfig(schedule="distilled", steps=8)).sampler.sigmas()[5] == np.float32(0.909375)
