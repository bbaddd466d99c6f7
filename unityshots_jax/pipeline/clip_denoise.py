"""One clip (video + audio) denoised by the plain LTX-2.3 transformer, as ltx-pipelines' `denoise_audio_video` does.

Per step every guidance pass the streams need (`needed_passes`: conditional, negative prompt, STG-perturbed,
modality-isolated) runs in one batch; each stream's x0 is guided with its own `GuidanceParams`, conditioned tokens are
re-imposed and the Euler step follows (`ltx.sampler.denoise_loop`). The initial state is ltx-core's: a start latent
(zeros for stage 1, the upsampled stage-1 latent for a refine stage) whose conditioned tokens are replaced by the
clean conditioning, then `noise·mask·s + latent·(1 − mask·s)` with the stage's noise scale `s`.

Layouts: video latents `[batch, F, h, w, C]` (patchified to `F·h·w` tokens in (frame, row, column) order, as
ltx-core's `VideoLatentPatchifier`), audio latents `[batch, Fa, Ca]` with `Ca = channels × mel bins`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx, struct

from unityshots_jax.ltx import positions
from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.inputs import Perturbations, StreamInput
from unityshots_jax.ltx.sampler import denoise_loop
from unityshots_jax.ltx.sampling import GuidanceParams, add_noise, guidance_passes, joint_skip_step, to_denoised

NO_GUIDANCE = GuidanceParams()
DEFAULT_EXECUTION = ExecutionConfig()


@struct.dataclass
class ClipInputs:
    """The arrays of one clip's denoising (B clips of one shape).

    video_context / negative_video_context `[B, S, Dv]`, audio_context / negative_audio_context `[B, S, Da]`: the
    prompt's and the negative prompt's contexts (the negative ones are read only when a stream's cfg ≠ 1);
    video_start `[B, F, h, w, C]`: the latent before noising (zeros, or the upsampled stage-1 latent), with the
    conditioned tokens already set to their clean values; video_mask `[B, F, h, w, 1]` float32: 1 = generate,
    0 = keep `video_start` (an I2V first frame); audio_start `[B, Fa, Ca]`; video_noise `[B, F, h, w, C]`,
    audio_noise `[B, Fa, Ca]`: the Gaussian noise of this stage (the latent dtype).
    """

    video_context: jnp.ndarray
    audio_context: jnp.ndarray
    negative_video_context: jnp.ndarray
    negative_audio_context: jnp.ndarray
    video_start: jnp.ndarray
    video_mask: jnp.ndarray
    audio_start: jnp.ndarray
    video_noise: jnp.ndarray
    audio_noise: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class ClipStage:
    """The static side of one denoising stage: fps of the clip, this stage's noise scale (1 for a stage from pure
    noise, σ₀ of the refine schedule for a re-noised stage) and the per-stream guidance (none: one pass per step)."""

    fps: float
    noise_scale: float = 1.0
    video: GuidanceParams = NO_GUIDANCE
    audio: GuidanceParams = NO_GUIDANCE
    temporal_scale: int = 8
    spatial_scale: int = 32
    audio_downsample: int = 4
    audio_hop_seconds: float = 0.01


def clip_positions(stage: ClipStage, batch: int, video_grid: tuple[int, int, int], audio_frames: int,
                   dtype: jnp.dtype) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(video `[batch, 3, F·h·w, 2]`, audio `[batch, 1, Fa, 2]`) positions. Video positions are rounded to the
    latent dtype, as the pipelines' `VideoLatentTools` do (bf16: 1/24 s → 0.041748 s); audio stays float32."""
    f, h, w = video_grid
    frames = jnp.broadcast_to(jnp.arange(f, dtype=jnp.float32)[None], (batch, f))
    video = positions.video_positions(frames, h, w, fps=stage.fps, temporal_scale=stage.temporal_scale,
                                      spatial_scale=stage.spatial_scale)
    audio_idx = jnp.broadcast_to(jnp.arange(audio_frames, dtype=jnp.float32)[None], (batch, audio_frames))
    audio = positions.audio_positions(audio_idx, downsample=stage.audio_downsample, hop_seconds=stage.audio_hop_seconds)
    return video.astype(dtype).astype(jnp.float32), audio


def _tokens(x: jnp.ndarray) -> jnp.ndarray:
    """`[B, F, h, w, C]` → `[B, F·h·w, C]`."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


@functools.partial(jax.jit, static_argnames=("graphdef", "stage", "execution"))
def denoise_clip(graphdef: nnx.GraphDef, params: nnx.State, inputs: ClipInputs, sigmas: jnp.ndarray,
                 stage: ClipStage, execution: ExecutionConfig = DEFAULT_EXECUTION) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Denoise one clip along `sigmas` (`[steps + 1]` float32): (video `[B, F, h, w, C]`, audio `[B, Fa, Ca]`)
    clean latents in the latent dtype (`execution.dtype`); conditioned tokens keep their clean values."""
    model = nnx.merge(graphdef, params)
    dtype = jnp.dtype(execution.dtype)
    b, f, h, w, c = inputs.video_start.shape
    fa = inputs.audio_start.shape[1]
    names, specs = zip(*guidance_passes(stage.video, stage.audio))
    passes = len(names)
    perturbations = Perturbations.from_spec([s for s in specs for _ in range(b)], model.cfg.num_layers)
    rep = lambda x: jnp.concatenate([x] * passes, 0)
    v_pos, a_pos = clip_positions(stage, b * passes, (f, h, w), fa, dtype)
    contexts = {"cond": (inputs.video_context, inputs.audio_context),
                "uncond": (inputs.negative_video_context, inputs.negative_audio_context)}
    v_ctx = jnp.concatenate([contexts.get(n, contexts["cond"])[0] for n in names], 0).astype(dtype)
    a_ctx = jnp.concatenate([contexts.get(n, contexts["cond"])[1] for n in names], 0).astype(dtype)
    mask_tokens = _tokens(inputs.video_mask.astype(jnp.float32))

    def guided(x, sigma, _step):
        xv, xa = _tokens(x[0]), x[1]
        v_t = rep(mask_tokens)[..., 0] * sigma  # X0Model: per-token σ (0 on conditioned tokens)
        sig_b = jnp.full((b * passes,), sigma, jnp.float32)
        video = StreamInput(rep(xv), sig_b, v_t, v_pos, v_ctx)
        audio = StreamInput(rep(xa), sig_b, jnp.broadcast_to(sigma, (b * passes, fa)), a_pos, a_ctx)
        vv, va = model(video, audio, perturbations, execution)
        split = lambda y: dict(zip(names, jnp.split(y, passes, 0)))
        gv = split(to_denoised(rep(xv), vv.astype(dtype), v_t))
        ga = split(to_denoised(rep(xa), va.astype(dtype), sigma))
        x0v = stage.video.apply(gv["cond"], gv.get("uncond"), gv.get("perturbed"), gv.get("isolated"))
        x0a = stage.audio.apply(ga["cond"], ga.get("uncond"), ga.get("perturbed"), ga.get("isolated"))
        return x0v.reshape(b, f, h, w, c), x0a

    start_v, start_a = inputs.video_start.astype(dtype), inputs.audio_start.astype(dtype)
    xv = add_noise(start_v, inputs.video_noise.astype(dtype), inputs.video_mask, stage.noise_scale)
    xa = add_noise(start_a, inputs.audio_noise.astype(dtype), jnp.ones((b, fa, 1), jnp.float32), stage.noise_scale)
    return denoise_loop(guided, (xv, xa), sigmas, clean=(start_v, None), denoise_mask=(inputs.video_mask, None),
                        skip_step=joint_skip_step(stage.video, stage.audio))
