"""The one denoising loop: a `jax.lax.scan` over a sigma schedule, with the solver and the schedule chosen by
`SamplerConfig`, the guidance's `skip_step` honoured, and conditioning re-imposed after every prediction.

The loop is model-agnostic. A caller hands it `denoise(x, sigma, step) → x0`, the *guided* clean prediction of
every stream (a tuple: video and audio for LTX-2.3, any number in tests), and per stream the clean latents and
denoise mask of its conditioning (`None`: nothing conditioned). Per step, as ltx-pipelines' loops do:

1. the guided x0 — or, on a step the guidance skips (`step % (skip_step + 1) != 0`), the previous step's guided x0,
   with no model call (ltx-pipelines' `multi_modal_guider_denoising_func` with both streams skipping);
2. `x0 ← post_process(x0, clean, mask)` per conditioned stream;
3. the solver's update from σ_i to σ_{i+1}.

Solvers are functions `solver(denoise, x, sigma, sigma_next, step) → x_next` over stream tuples, where `denoise`
already applies 1–2, so a multi-stage solver (res_2s: a second prediction at an intermediate σ, SDE noise) can call
it more than once per step. Only "euler" (`EulerDiffusionStep`) is ported.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from unityshots_jax.ltx.sampling import MAX_SHIFT_TOKENS, distilled_sigmas, euler_step, ltx2_sigmas, post_process

Array = jax.Array
Streams = tuple[Array, ...]
DenoiseFn = Callable[[Streams, Array, Array], Streams]


def euler_solver(denoise: DenoiseFn, x: Streams, sigma: Array, sigma_next: Array, step: Array) -> Streams:
    """One Euler step of every stream (`euler_step`) on the prediction at σ."""
    x0 = denoise(x, sigma, step)
    return tuple(euler_step(xi, x0i, sigma, sigma_next) for xi, x0i in zip(x, x0))


SOLVERS: dict[str, Callable] = {"euler": euler_solver}
SCHEDULES = ("ltx2", "distilled")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """solver: a key of `SOLVERS` ("euler"); schedule: "ltx2" (LTX2Scheduler: `steps` steps, shifted for
    `shift_tokens` tokens — the pipelines pass none, i.e. 4096) or "distilled" (the distilled checkpoint's fixed
    8-step schedule, Appendix B of the architecture reference; `steps` must be 8, `shift_tokens` is unused)."""

    solver: str = "euler"
    schedule: str = "ltx2"
    steps: int = 30
    shift_tokens: int = MAX_SHIFT_TOKENS

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"sampler.solver: {self.solver!r}; ported: {sorted(SOLVERS)} (res_2s is not ported yet)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"sampler.schedule: {self.schedule!r}; expected one of {list(SCHEDULES)}")
        if self.steps < 1:
            raise ValueError(f"sampler.steps: must be ≥ 1, got {self.steps}")
        if self.schedule == "distilled" and self.steps != len(distilled_sigmas(1)) - 1:
            raise ValueError(f"sampler.steps: the distilled schedule has {len(distilled_sigmas(1)) - 1} steps, got {self.steps}")

    def sigmas(self) -> np.ndarray:
        """float32 `[steps + 1]`, decreasing to 0."""
        if self.schedule == "distilled":
            return distilled_sigmas(1)
        return ltx2_sigmas(self.steps, tokens=self.shift_tokens)


def denoise_loop(
    denoise: DenoiseFn,
    x: Streams,
    sigmas: Array,
    *,
    clean: tuple[Array | None, ...],
    denoise_mask: tuple[Array | None, ...],
    solver: str = "euler",
    skip_step: int = 0,
    callback: Callable[[], None] | None = None,
) -> Streams:
    """Denoise the streams `x` along `sigmas` (see the module docstring); returns the final latents.

    denoise(x, sigma, step) → guided x0 per stream (same shapes and dtypes as x; sigma: the scalar step σ, step: the
    int32 index). x, clean: per stream, e.g. `[batch, tokens, channels]` or `[batch, F, H, W, C]`; denoise_mask:
    per stream, broadcastable to x with a trailing axis of 1, 1 = generate, 0 = keep clean; sigmas: `[steps + 1]`
    float32. skip_step: `GuidanceParams.skip_step` (0 = never; use `joint_skip_step` for several streams).
    callback: called on the host after every step (`jax.debug.callback`, e.g. a progress bar).
    """
    sigmas = jnp.asarray(sigmas, jnp.float32)
    n = sigmas.shape[0] - 1
    step_fn = SOLVERS[solver]

    def conditioned(x0: Streams) -> Streams:
        return tuple(p if c is None else post_process(p, c, m) for p, c, m in zip(x0, clean, denoise_mask))

    def body(carry, inp):
        xc, last = carry
        sigma, sigma_next, i = inp
        cache = {"last": last}

        def predict(xs: Streams, sig: Array, step: Array) -> Streams:
            if skip_step:
                skip = jnp.mod(step, skip_step + 1) != 0
                x0 = jax.lax.cond(skip, lambda: cache["last"], lambda: tuple(denoise(xs, sig, step)))
                cache["last"] = x0
            else:
                x0 = tuple(denoise(xs, sig, step))
            return conditioned(x0)

        xc = step_fn(predict, xc, sigma, sigma_next, i)
        if callback is not None:
            jax.debug.callback(callback, ordered=False)
        return (xc, cache["last"]), None

    last0 = tuple(jnp.zeros_like(s) for s in x) if skip_step else None  # step 0 never skips
    (out, _), _ = jax.lax.scan(body, (tuple(x), last0), (sigmas[:-1], sigmas[1:], jnp.arange(n, dtype=jnp.int32)))
    return out
