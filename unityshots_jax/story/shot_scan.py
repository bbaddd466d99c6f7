"""Generation: a `jax.lax.scan` over shots carrying the story state, a scan over denoising steps inside it.

The scan runs over (shot conditioning, the shot's references): each shot attends to its own reference portrait and
voice (`StoryInputs.per_shot_refs`: the story's references for every shot unless it binds shots to characters).
Per shot: write the LTM for the boundary entering it, draw noise, run the denoising loop (`ltx.sampler.denoise_loop`:
solver and schedule from `SamplingConfig.sampler`) with the reference's multimodal guidance (CFG, STG, modality
isolation, rescale, skip_step; the passes a step needs run as one batch), re-impose the I2V first frame after every
prediction, then store the shot's tail. Stories of any
length up to `max_shots` share one compilation (padding shots leave the state untouched and output zeros).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.inputs import Perturbations
from unityshots_jax.ltx.sampler import SamplerConfig, denoise_loop
from unityshots_jax.ltx.sampling import GuidanceParams, guidance_passes, joint_skip_step, to_denoised
from unityshots_jax.story.shot_sequence import References, ShotConditioning, shot_video_mask, with_first_frame
from unityshots_jax.story.story_inputs import StoryInputs
from unityshots_jax.story.story_model import StoryModel, shot_velocity, zero_padding
from unityshots_jax.story.story_state import StoryState, enter_shot, finish_shot, init_state

NO_GUIDANCE = GuidanceParams(cfg=1.0, stg=0.0, modality=1.0, rescale=0.0, stg_blocks=())


class StepCounter:
    """The host end of the per-step callback: compiled into a sampling run once (it hashes by identity, so one
    counter per generator keeps one compilation), it calls whoever `listen`s while that run executes — e.g. a
    tqdm bar advancing over shots × steps."""

    def __init__(self) -> None:
        self._listener = None

    def tick(self) -> None:
        if self._listener is not None:
            self._listener()

    @contextlib.contextmanager
    def listen(self, fn):
        previous, self._listener = self._listener, fn
        try:
            yield fn
        finally:
            self._listener = previous


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """sampler: solver, sigma schedule and steps (`ltx.sampler.SamplerConfig`; LTX-2.3: Euler, 30 LTX2Scheduler
    steps shifted for 4096 tokens); video / audio: guidance per stream (ltx.sampling.LTX23_VIDEO / LTX23_AUDIO for
    the pipelines' values; the default runs one pass per step; their skip_step must agree, see `joint_skip_step`);
    progress: a `StepCounter` told of every denoising step (a host callback; None: no callback)."""

    sampler: SamplerConfig = SamplerConfig()
    video: GuidanceParams = NO_GUIDANCE
    audio: GuidanceParams = NO_GUIDANCE
    progress: StepCounter | None = None

    def __post_init__(self) -> None:
        joint_skip_step(self.video, self.audio)  # refuse streams that skip on different steps before compiling


def _guidance_batch(model: StoryModel, inputs: StoryInputs, shot: ShotConditioning, sampling: SamplingConfig, batch: int):
    """The passes a step runs, stacked on the batch axis: (shot conditioning ×P, perturbations, pass names)."""
    passes = guidance_passes(sampling.video, sampling.audio)
    negative = shot.replace(video_context=inputs.negative_video_context, audio_context=inputs.negative_audio_context,
                            context_mask=inputs.negative_context_mask)
    names = [name for name, _ in passes]
    shots = [negative if name == "uncond" else shot for name in names]
    specs = [[perturbation] * batch for _, perturbation in passes]
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs, 0), *shots)
    perturbations = Perturbations.from_spec([s for group in specs for s in group], model.ltx_cfg.num_layers)
    return stacked, perturbations, names


def denoise_shot(
    model: StoryModel,
    inputs: StoryInputs,
    shot: ShotConditioning,
    refs: References,
    state: StoryState,
    key: jax.Array,
    sampling: SamplingConfig,
    execution: ExecutionConfig,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """One shot from noise: clean video `[batch, F, H, W, C]` and audio `[batch, Fa, Ca]` latents.

    shot: the shot's conditioning (`ShotConditioning` fields `[batch, …]`); refs: the shot's references (image
    `[batch, R, H, W, C]`, image_valid `[batch]`, audio `[batch, Fr, Ca]`, audio_mask `[batch, Fr]`); inputs: the
    story, for its negative prompt."""
    cfg = model.story_cfg
    b = shot.mode.shape[0]
    dtype = jnp.dtype(execution.dtype)
    kv, ka = jax.random.split(key)
    x_video = with_first_frame(jax.random.normal(kv, (b, cfg.video_frames, cfg.height, cfg.width, cfg.latent_channels), jnp.float32).astype(dtype), shot)
    x_audio = jax.random.normal(ka, (b, cfg.audio_frames, cfg.audio_channels), jnp.float32).astype(dtype)
    clean_video = with_first_frame(jnp.zeros_like(x_video), shot)
    mask = shot_video_mask(shot, cfg).reshape(b, cfg.video_frames, cfg.height, cfg.width, 1)
    stacked, perturbations, names = _guidance_batch(model, inputs, shot, sampling, b)
    passes = len(names)
    rep = lambda x: jnp.concatenate([x] * passes, 0)  # noqa: E731  every pass of a step in one batch
    refs, state_p, masks = jax.tree.map(rep, refs), jax.tree.map(rep, state), rep(mask)

    def guided(x, sigma, _step):
        xv, xa = x
        sig_b = jnp.full((b * passes,), sigma, jnp.float32)
        vv, va = shot_velocity(model, rep(xv), rep(xa), sig_b, stacked, refs, state_p, perturbations, execution)
        split = lambda x: dict(zip(names, jnp.split(x, passes, 0)))  # noqa: E731
        gv = split(to_denoised(rep(xv), vv, sigma * masks))
        ga = split(to_denoised(rep(xa), va, sigma))
        return (sampling.video.apply(gv["cond"], gv.get("uncond"), gv.get("perturbed"), gv.get("isolated")),
                sampling.audio.apply(ga["cond"], ga.get("uncond"), ga.get("perturbed"), ga.get("isolated")))

    xv, xa = denoise_loop(
        guided, (x_video, x_audio), jnp.asarray(sampling.sampler.sigmas()), clean=(clean_video, None),
        denoise_mask=(mask, None), solver=sampling.sampler.solver, skip_step=joint_skip_step(sampling.video, sampling.audio),
        callback=sampling.progress.tick if sampling.progress is not None else None,
    )  # fmt: skip
    return xv, xa


def story_step(model, inputs, sampling, execution, carry, xs):
    """One shot of the story scan: (state, key), (shot, refs) → (state, key), (video, audio).

    xs: the shot's conditioning (`ShotConditioning` fields `[batch, …]`) and its references (`References` fields
    `[batch, …]`), one slice of (`inputs.shots`, `inputs.per_shot_refs()`). A shot that no story in the batch has
    (padding up to max_shots) is skipped with `lax.cond`: the state passes through and the outputs are zeros, so a
    3-shot story costs 3 shots, not max_shots.
    """
    state, key = carry
    shot, refs = xs
    key, sub = jax.random.split(key)
    cfg = model.story_cfg
    b = shot.mode.shape[0]
    dtype = jnp.dtype(execution.dtype)

    def run(state):
        state = enter_shot(state, shot.boundary, shot.valid, cfg)
        video, audio = denoise_shot(model, inputs, shot, refs, state, sub, sampling, execution)
        video, audio = zero_padding(video, audio, shot, cfg)
        return finish_shot(state, video, shot.n_frames, shot.valid, cfg), (video, audio)

    def skip(state):
        video = jnp.zeros((b, cfg.video_frames, cfg.height, cfg.width, cfg.latent_channels), dtype)
        audio = jnp.zeros((b, cfg.audio_frames, cfg.audio_channels), dtype)
        return state, (video, audio)

    state, outputs = jax.lax.cond(jnp.any(shot.valid), run, skip, state)
    return (state, key), outputs


@functools.partial(jax.jit, static_argnames=("graphdef", "sampling", "execution"))
def generate_story(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    inputs: StoryInputs,
    key: jax.Array,
    sampling: SamplingConfig = SamplingConfig(),
    execution: ExecutionConfig = ExecutionConfig(),
) -> tuple[jnp.ndarray, jnp.ndarray, StoryState]:
    """All shots: video `[shots, batch, F, H, W, C]`, audio `[shots, batch, Fa, Ca]` (padding shots and
    frames are zero), and the final story state. Each shot uses its own references (`inputs.shot_refs`) or, when
    None, the story's (`inputs.refs`, the same for every shot). Pure and jitted; one compilation per shape
    configuration (and per whether `shot_refs` is given)."""
    model = nnx.merge(graphdef, params)
    state = init_state(model.story_cfg, inputs.batch, jnp.dtype(execution.dtype))
    body = functools.partial(story_step, model, inputs, sampling, execution)
    (state, _), (video, audio) = jax.lax.scan(body, (state, key), (inputs.shots, inputs.per_shot_refs()))
    return video, audio, state
