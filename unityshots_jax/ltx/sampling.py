"""Sampling math of LTX-2.3: sigma schedules, the Euler step, conditioning masks and multi-modal guidance.

Everything here is a pure function over arrays (jit-able, usable inside ``jax.lax.scan``) except the schedule
builders, which run on the host in NumPy float32 so that the schedule is bit-identical to ltx-core 1.0.0's
``LTX2Scheduler`` (see ``ltx2_sigmas``).

Conventions (patchified latents, as in ltx-core's ``LatentState``):

* ``x`` / ``x0`` / ``clean`` / ``noise``: ``[batch, tokens, channels]`` in the latent dtype (bf16 in the pipelines);
* ``denoise_mask``: ``[batch, tokens, 1]`` float32, 1 = generate, 0 = keep the clean (conditioning) token;
* ``sigma``: a scalar (0-d array or Python float), the step's noise level. Only ``to_denoised`` takes per-token
  sigmas (``timesteps = denoise_mask * sigma``), because that is what the model wrapper (X0Model) uses.

Flow-matching relations: ``x_σ = (1-σ)·x0 + σ·ε``, velocity ``v = ε − x0``, so ``x0 = x − σ·v`` and
``v = (x − x0)/σ``. The Euler step moves ``x`` along ``v`` from σ to σ_next.

dtype rules (ltx-core 1.0.0): ``to_velocity``/``to_denoised``/Euler compute in float32 and cast back to the
latent dtype; note that the Euler step rounds the velocity to the latent dtype *before* the update (it calls
``to_velocity``, which casts back). ``post_process`` and ``add_noise`` compute in float32 (the mask is float32).
``guided_x0`` computes in the inputs' dtype, like 1.0.0 (HEAD computes guidance in float32: pass float32 inputs).

Rounding vs torch: XLA rewrites ``a / scalar`` as ``a · (1/scalar)`` and contracts ``a·b + c`` into fused
multiply-adds (CPU, also eagerly for the division; GPU likewise), while torch's kernels round every op. Results
therefore differ from ltx-core by ≤ 1 float32 ulp on a few percent of elements (≤ ~1e-7 relative), and after a
cast to bf16 about 1e-5 of the values land one bf16 ulp apart. Everything else (order of terms, dtypes, which sigma)
matches; the host-side schedules are bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Scalar = float | Array

# Token-count anchors of the shift interpolation: base_shift at 1024 tokens, max_shift at 4096.
BASE_SHIFT_TOKENS = 1024
MAX_SHIFT_TOKENS = 4096
BASE_SHIFT, MAX_SHIFT = 0.95, 2.05


def token_shift(tokens: int, base_shift: float = BASE_SHIFT, max_shift: float = MAX_SHIFT) -> float:
    """The sigma shift for a sequence of `tokens` tokens: the line through (1024, base_shift) and (4096, max_shift),
    not capped (LTX2Scheduler's; the training distribution caps `tokens` at 4096 itself). Python float64."""
    slope = (max_shift - base_shift) / (MAX_SHIFT_TOKENS - BASE_SHIFT_TOKENS)
    return slope * tokens + (base_shift - slope * BASE_SHIFT_TOKENS)

# ltx_pipelines.utils.constants: the distilled 8-step schedule and the stage-2 (refine) 3-step schedule.
DISTILLED_SIGMAS = np.array([1.0, 0.99375, 0.9875, 0.98125, 0.975, 0.909375, 0.725, 0.421875, 0.0], np.float32)
STAGE_2_DISTILLED_SIGMAS = np.array([0.909375, 0.725, 0.421875, 0.0], np.float32)


def distilled_sigmas(stage: int = 1) -> np.ndarray:
    """Float32 host copy of the distilled schedule: stage 1 (8 steps, 9 values) or stage 2 (3 steps, 4 values)."""
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage}")
    return (DISTILLED_SIGMAS if stage == 1 else STAGE_2_DISTILLED_SIGMAS).copy()


def _torch_linspace_f32(start: float, end: float, n: int) -> np.ndarray:
    """`n` float32 points from `start` to `end`, rounded like torch's CPU float32 linspace.

    torch evaluates ``start + step·i`` for the first half and ``end − step·(n−1−i)`` for the second half, with a
    float32 ``step`` and a fused multiply-add (one rounding). The product of two float32 numbers is exact in
    float64, so evaluating in float64 and rounding once to float32 reproduces the fused result.
    """
    f32 = np.float32
    start32, end32 = f32(start), f32(end)
    if n == 1:
        return np.array([start32], np.float32)
    step = np.float64(f32((end32 - start32) / f32(n - 1)))
    i = np.arange(n, dtype=np.float64)
    half = n // 2
    head = np.float64(start32) + step * i
    tail = np.float64(end32) - step * (n - 1 - i)
    return np.where(i < half, head, tail).astype(np.float32)


def ltx2_sigmas(
    steps: int,
    *,
    tokens: int = MAX_SHIFT_TOKENS,
    max_shift: float = MAX_SHIFT,
    base_shift: float = BASE_SHIFT,
    stretch: bool = True,
    terminal: float = 0.1,
) -> np.ndarray:
    """LTX2Scheduler sigma schedule: float32 ``[steps + 1]``, decreasing from ≈1.0 (e.g. 0.9999995: the reference's
    rounding) to ``terminal`` (≈, last non-zero) and ending in exactly 0.0.

    * ``s = linspace(1, 0, steps+1)`` (float32);
    * ``shift = tokens·m + b`` with the line through (1024, base_shift) and (4096, max_shift) — the pipelines pass no
      latent, so ``tokens = 4096`` and ``shift = max_shift``;
    * ``σ = e^shift / (e^shift + 1/s − 1)`` for ``s ≠ 0`` (0 stays 0);
    * if ``stretch``: the non-zero sigmas are rescaled so the last one equals ``terminal``:
      ``σ ← 1 − (1−σ) / ((1−σ_last)/(1−terminal))``.

    Computed on the host in float32 with the reference's operation order and rounding (``a / t`` is evaluated as
    ``reciprocal(t)·a``, Python scalars are rounded to float32 where they meet a float32 array), so the result is
    bit-identical to ``LTX2Scheduler().execute(steps)`` on x86 CPUs.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    f32 = np.float32
    s = _torch_linspace_f32(1.0, 0.0, steps + 1)

    e = f32(math.exp(token_shift(tokens, base_shift, max_shift)))

    nonzero = s != 0
    with np.errstate(divide="ignore"):
        inv_s = f32(1.0) / s  # inf at s == 0, masked below
    denom = e + (inv_s - f32(1.0))
    sig = np.where(nonzero, (f32(1.0) / denom) * e, f32(0.0)).astype(np.float32)

    if stretch:
        # With steps == 1 the only non-zero sigma may round to exactly 1.0, making this 0/0 = NaN; ltx-core does the
        # same, so it is kept (use stretch=False for a one-step schedule).
        one_minus = f32(1.0) - sig[nonzero]
        scale = one_minus[-1] / f32(1.0 - terminal)
        with np.errstate(invalid="ignore", divide="ignore"):
            sig[nonzero] = f32(1.0) - one_minus / scale
    return sig.astype(np.float32)


def to_denoised(latent: Array, velocity: Array, sigma: Array) -> Array:
    """x0 = x_t − v·σ in float32, cast back to the latent dtype (ltx-core's ``to_denoised``, used by X0Model).

    latent, velocity: ``[batch, tokens, channels]`` (or any latent layout); sigma: a scalar, per-sample, or per-token
    ``[batch, tokens]`` (a trailing channel axis is added) — it broadcasts against the latent."""
    sigma = jnp.asarray(sigma, jnp.float32)
    if sigma.ndim == 2:
        sigma = sigma[..., None]
    out = latent.astype(jnp.float32) - velocity.astype(jnp.float32) * sigma
    return out.astype(latent.dtype)


def to_velocity(x: Array, sigma: Scalar, x0: Array) -> Array:
    """Velocity ``(x − x0)/σ`` in float32, cast to ``x.dtype``.

    x, x0: ``[batch, tokens, channels]``; sigma: scalar, must be non-zero (not checked under jit).
    """
    sigma = jnp.asarray(sigma, jnp.float32)
    return ((x.astype(jnp.float32) - x0.astype(jnp.float32)) / sigma).astype(x.dtype)


def euler_step(x: Array, x0: Array, sigma: Scalar, sigma_next: Scalar) -> Array:
    """One Euler step from σ to σ_next: ``x + (x − x0)/σ · (σ_next − σ)``; returns ``x.dtype``.

    x, x0: ``[batch, tokens, channels]``; sigma, sigma_next: the *scalar* schedule values ``sigmas[i]`` and
    ``sigmas[i+1]`` (never the per-token timesteps — conditioned tokens are handled by ``post_process``, which makes
    x0 = x there so their velocity is 0). As in ltx-core, the velocity is rounded to ``x.dtype`` before the update,
    and ``dt = σ_next − σ`` and the update are float32.
    """
    sigma = jnp.asarray(sigma, jnp.float32)
    dt = jnp.asarray(sigma_next, jnp.float32) - sigma
    v = to_velocity(x, sigma, x0)
    return (x.astype(jnp.float32) + v.astype(jnp.float32) * dt).astype(x.dtype)


def post_process(x0: Array, clean: Array, denoise_mask: Array) -> Array:
    """Re-impose conditioning on a denoised prediction: ``x0·m + clean·(1−m)`` in float32, cast to ``x0.dtype``.

    x0, clean: ``[batch, tokens, channels]``; denoise_mask m: ``[batch, tokens, 1]`` float32.
    """
    m = denoise_mask.astype(jnp.float32)
    return (x0 * m + clean.astype(jnp.float32) * (1 - m)).astype(x0.dtype)


def add_noise(latent: Array, noise: Array, denoise_mask: Array, noise_scale: Scalar = 1.0) -> Array:
    """GaussianNoiser: ``noise·(m·s) + latent·(1 − m·s)``, cast to ``latent.dtype``.

    latent, noise: ``[batch, tokens, channels]`` (the reference draws the noise in the latent dtype);
    denoise_mask m: ``[batch, tokens, 1]`` float32; noise_scale s: scalar (1.0 for stage 1; the stage-2 re-noise
    uses the first stage-2 sigma, 0.909375).
    """
    scaled = denoise_mask.astype(jnp.float32) * jnp.asarray(noise_scale, jnp.float32)
    return (noise * scaled + latent * (1 - scaled)).astype(latent.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Guidance
# ----------------------------------------------------------------------------------------------------------------


def _is_static(v) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer))


def _std(a: Array) -> Array:
    """Unbiased (n−1) standard deviation over all elements (torch ``Tensor.std()``), in float32, cast to a.dtype."""
    a32 = a.astype(jnp.float32)
    return jnp.std(a32, ddof=1).astype(a.dtype)


def guided_x0(
    cond: Array,
    uncond_text: Array | None = None,
    perturbed: Array | None = None,
    isolated: Array | None = None,
    *,
    cfg: Scalar = 1.0,
    stg: Scalar = 0.0,
    modality: Scalar = 1.0,
    rescale: Scalar = 0.0,
) -> Array:
    """MultiModalGuider.calculate (ltx-core 1.0.0) on one stream's x0 predictions.

    All inputs ``[batch, tokens, channels]``, same dtype; result has that shape and dtype::

        pred = cond + (cfg−1)(cond − uncond_text) + stg·(cond − perturbed) + (modality−1)(cond − isolated)
        if rescale ≠ 0:  pred *= rescale·(std(cond)/std(pred)) + (1 − rescale)

    ``std`` is torch's default: unbiased (n−1) over the *whole* tensor (all batch samples together, not per
    sample). A pass that was not run is ``None`` and stands for 0.0, as in the pipelines (which pass 0.0); with
    static scales a ``None`` for a pass the scale requires raises. Terms are added in the reference's order and
    computed in the inputs' dtype (1.0.0 behaviour; HEAD runs this in float32 — pass float32 inputs for that).
    Scales may be Python numbers (static) or traced scalars.
    """
    for name, t, needed in (
        ("uncond_text", uncond_text, _needs(cfg, 1.0)),
        ("perturbed", perturbed, _needs(stg, 0.0)),
        ("isolated", isolated, _needs(modality, 1.0)),
    ):
        if t is None and needed:
            raise ValueError(f"guided_x0: {name} is required by the given scale")
    dt = cond.dtype

    def diff(other):
        return cond if other is None else cond - other

    def scal(v):
        return v if _is_static(v) else jnp.asarray(v, dt)

    pred = cond + scal(cfg - 1) * diff(uncond_text)
    pred = pred + scal(stg) * diff(perturbed)
    pred = pred + scal(modality - 1) * diff(isolated)

    if _is_static(rescale):
        if rescale == 0:
            return pred
        factor = _std(cond) / _std(pred)
        factor = rescale * factor + (1 - rescale)
        return pred * factor
    r = jnp.asarray(rescale, dt)
    factor = r * (_std(cond) / _std(pred)) + (jnp.asarray(1, dt) - r)
    return jnp.where(r != 0, pred * factor, pred)


def _needs(scale, neutral: float) -> bool:
    """Whether a pass is needed: ``not math.isclose(scale, neutral)`` (default tolerances: rel 1e-9, abs 0).

    Traced scales are assumed to need the pass.
    """
    if not _is_static(scale):
        return True
    return not math.isclose(float(scale), neutral)


@dataclass(frozen=True)
class GuidanceParams:
    """Per-stream guidance scales (ltx-core ``MultiModalGuiderParams``).

    cfg: text CFG scale (1 = off); stg: spatio-temporal guidance scale (0 = off), the perturbed pass skips this
    stream's self-attention in ``stg_blocks``; modality: modality-isolation scale (1 = off), the isolated pass skips
    the A↔V cross-attention in all blocks; rescale: std-rescale mix (0 = off); skip_step: reuse the previous
    prediction on steps where ``step % (skip_step+1) != 0`` (0 = never).
    """

    cfg: float = 1.0
    stg: float = 0.0
    modality: float = 1.0
    rescale: float = 0.0
    stg_blocks: tuple[int, ...] = ()
    skip_step: int = 0

    @property
    def needs_uncond(self) -> bool:
        """Negative-prompt pass needed: ``cfg`` not close to 1 (math.isclose)."""
        return _needs(self.cfg, 1.0)

    @property
    def needs_perturbed(self) -> bool:
        """STG (perturbed) pass needed: ``stg`` not close to 0 — with isclose's abs_tol 0 that means ``stg != 0``."""
        return _needs(self.stg, 0.0)

    @property
    def needs_isolated(self) -> bool:
        """Modality-isolation pass needed: ``modality`` not close to 1."""
        return _needs(self.modality, 1.0)

    @property
    def num_passes(self) -> int:
        """Transformer calls per step for this stream alone (1 + the needed guidance passes)."""
        return 1 + self.needs_uncond + self.needs_perturbed + self.needs_isolated

    def should_skip_step(self, step: int) -> bool:
        """True if step `step` reuses the previous guided prediction."""
        return self.skip_step != 0 and step % (self.skip_step + 1) != 0

    def apply(
        self,
        cond: Array,
        uncond_text: Array | None = None,
        perturbed: Array | None = None,
        isolated: Array | None = None,
    ) -> Array:
        """``guided_x0`` with these scales (shapes ``[batch, tokens, channels]``)."""
        scales = {"cfg": self.cfg, "stg": self.stg, "modality": self.modality, "rescale": self.rescale}
        return guided_x0(cond, uncond_text, perturbed, isolated, **scales)


def needed_passes(*streams: GuidanceParams) -> tuple[bool, bool, bool]:
    """(uncond, perturbed, isolated): which extra transformer calls a joint A/V step runs.

    The pipelines run a pass when *any* stream needs it, and then every stream gets that pass's prediction (a
    stream whose scale is neutral multiplies it by 0). The perturbed call perturbs only the streams whose ``stg``
    is on; the isolated call always skips both A2V and V2A.
    """
    return (
        any(p.needs_uncond for p in streams),
        any(p.needs_perturbed for p in streams),
        any(p.needs_isolated for p in streams),
    )


def guidance_passes(video: GuidanceParams, audio: GuidanceParams) -> tuple[tuple[str, tuple], ...]:
    """The transformer calls of one joint A/V step, in batch order: (name, perturbations) with names "cond",
    "uncond" (negative prompt), "perturbed" (STG), "isolated" (modality isolation), as ltx-pipelines' multi-modal
    guider runs them. The perturbed call skips the self-attention of only the streams whose STG is on (on their
    `stg_blocks`); the isolated call skips A2V and V2A cross-attention in every block. Perturbations are
    `(type, blocks or None for all)` pairs (`Perturbations.from_spec`)."""
    uncond, perturbed, isolated = needed_passes(video, audio)
    passes: list[tuple[str, tuple]] = [("cond", ())]
    if uncond:
        passes.append(("uncond", ()))
    if perturbed:
        skips = (("skip_video_self_attn", video), ("skip_audio_self_attn", audio))
        passes.append(("perturbed", tuple((kind, tuple(p.stg_blocks)) for kind, p in skips if p.needs_perturbed)))
    if isolated:
        passes.append(("isolated", (("skip_a2v_cross_attn", None), ("skip_v2a_cross_attn", None))))
    return tuple(passes)


def joint_skip_step(*streams: GuidanceParams) -> int:
    """The `skip_step` of a joint A/V step: every stream's, which must agree.

    The pipelines reuse a stream's previous guided x0 on its skipped steps and run the model with that stream
    *disabled* (its blocks skipped) when only the other stream needs the step — which changes the other stream's
    prediction through the A↔V cross-attention. The port has no disabled-stream forward, so streams that skip on
    different steps are refused (ValueError) rather than approximated; equal values reproduce the reference exactly
    (a step both skip runs no model call)."""
    values = {int(p.skip_step) for p in streams}
    if len(values) != 1:
        raise ValueError(f"guidance skip_step: the streams differ ({sorted(values)}); per-stream skipping needs a "
                         "transformer call with one stream disabled, which is not ported — use one value")
    (value,) = values
    if value < 0:
        raise ValueError(f"guidance skip_step: must be ≥ 0, got {value}")
    return value


# ltx_pipelines.utils.constants.LTX_2_3_PARAMS (30 steps, STG on block 28).
LTX23_VIDEO = GuidanceParams(cfg=3.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(28,))
LTX23_AUDIO = GuidanceParams(cfg=7.0, stg=1.0, modality=3.0, rescale=0.7, stg_blocks=(28,))
LTX23_STEPS = 30
