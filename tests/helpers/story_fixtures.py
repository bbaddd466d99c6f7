"""Shared fixtures of the story-model tests: a tiny LTX backbone and story configuration, parameter and input
builders."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers.inputs import randomize
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.inputs import StreamInput
from unityshots_jax.reference.tiny_configs import tiny_transformer_config
from unityshots_jax.story import strata_rope
from unityshots_jax.story.shot_sequence import ShotConditioning
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_inputs import make_story_inputs
from unityshots_jax.story.story_model import MemoryParams, abstract_story_model, shot_velocity

LTX = LTXConfig.from_checkpoint_config(tiny_transformer_config(), "audio_video")
DV, DA = LTX.video.dim, LTX.audio.dim  # text context widths (2.3 layout: the stream widths)
SC = StoryConfig(
    max_shots=4, video_frames=6, height=2, width=3, latent_channels=16, audio_frames=8, audio_channels=16,
    text_tokens=4, ref_audio_frames=4, frame_limit=32,
)
FRAME = (SC.height, SC.width, SC.latent_channels)
EXEC = ExecutionConfig(attention="dense")


# ----------------------------------------------------------------------------------------------------- helpers
def story_params(sc: StoryConfig = SC, seed: int = 0, ltx: LTXConfig = LTX, backbone: dict | None = None):
    """(graphdef, state) of a story model: random backbone (0.2·N, or `backbone` as a pure dict), memory
    parameters exactly as initialised. Built abstractly: running the Flax initialisers eagerly takes ~20 s."""
    graphdef, state = nnx.split(abstract_story_model(ltx, sc))
    with nnx.use_eager_sharding(False):
        memory = nnx.state(MemoryParams(ltx, sc, nnx.Rngs(seed)))
    if backbone is None:
        backbone = nnx.to_pure_dict(randomize(state["backbone"], seed))
    nnx.replace_by_pure_dict(state, {"backbone": backbone, "memory": nnx.to_pure_dict(memory)})
    return graphdef, state


@functools.lru_cache(maxsize=None)
def default_model():
    return story_params(SC, seed=0)


def with_memory_tables(params, video_table, audio_table):
    """A copy of `params` with the cut-type embedding tables replaced."""
    pure = nnx.to_pure_dict(params)
    pure["memory"]["cut_video"]["table"] = jnp.asarray(video_table, jnp.float32)
    pure["memory"]["cut_audio"]["table"] = jnp.asarray(audio_table, jnp.float32)
    graphdef, state = default_model()
    new = jax.tree.map(lambda x: x, state)
    nnx.replace_by_pure_dict(new, pure)
    return new


@functools.partial(jax.jit, static_argnums=0)
def velocity(graphdef, params, noisy_video, noisy_audio, sigma, shot, refs, state):
    return shot_velocity(nnx.merge(graphdef, params), noisy_video, noisy_audio, sigma, shot, refs, state, None, EXEC)


def backbone_split(graphdef, params):
    return nnx.split(nnx.merge(graphdef, params).backbone)


def story(
    sc: StoryConfig,
    k: int,
    modes,
    *,
    seed: int = 0,
    n_frames=None,
    n_audio=None,
    cut=None,
    boundary=None,
    ref_image: bool = True,
    ref_audio: bool = True,
    ref_audio_mask=None,
):
    """Seeded `StoryInputs` for `len(modes)` stories of k shots (modes `[batch][k]`)."""
    b = len(modes)
    rng = np.random.default_rng(seed)
    s = sc.text_tokens
    cm = np.ones((b, k, s), np.int32)
    cm[:, :, -1] = rng.integers(0, 2, (b, k))  # some padded text tokens
    frame = (sc.height, sc.width, sc.latent_channels)
    return make_story_inputs(
        sc,
        video_context=rng.standard_normal((b, k, s, DV)),
        audio_context=rng.standard_normal((b, k, s, DA)),
        context_mask=cm,
        modes=np.asarray(modes),
        cut_strength=np.full((b, k), 0.4) if cut is None else np.asarray(cut),
        boundary=np.full((b, k), 0.5) if boundary is None else np.asarray(boundary),
        n_frames=np.full((b, k), sc.video_frames) if n_frames is None else np.asarray(n_frames),
        n_audio=np.full((b, k), sc.audio_frames) if n_audio is None else np.asarray(n_audio),
        first_frame=rng.standard_normal((b, k, *frame)),
        ref_image=rng.standard_normal((b, sc.ref_image_frames, *frame)) if ref_image else None,
        ref_audio=rng.standard_normal((b, sc.ref_audio_frames, sc.audio_channels)) if ref_audio else None,
        ref_audio_mask=ref_audio_mask,
        negative_video_context=rng.standard_normal((b, s, DV)),
        negative_audio_context=rng.standard_normal((b, s, DA)),
    )


def shot_at(inputs, i: int) -> ShotConditioning:
    return jax.tree.map(lambda x: x[i], inputs.shots)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def noisy_shot(b: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    v = jnp.asarray(rng.standard_normal((b, SC.video_frames, *FRAME)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((b, SC.audio_frames, SC.audio_channels)), jnp.float32)
    sigma = jnp.asarray(rng.uniform(0.3, 0.9, b), jnp.float32)
    return v, a, sigma


def _shot_zero(batch_modes, n_frames, n_audio, cut, seed=7):
    inputs = story(SC, 1, [[m] for m in batch_modes], seed=seed, n_frames=[[n] for n in n_frames],
                   n_audio=[[n] for n in n_audio], cut=[[c] for c in cut], boundary=[[0.0]] * len(batch_modes),
                   ref_image=False, ref_audio=False)
    return inputs, shot_at(inputs, 0)


def _backbone_inputs(shot, nv, na, noisy_v, noisy_a, sigma):
    """Plain transformer inputs of only the shot's own first nv frames / na audio latents (no padding, no
    memory, no reference tokens), at the shot block's positions, timesteps σ and the shot's contexts."""
    b, ft = sigma.shape[0], SC.frame_tokens
    vpos = strata_rope.video_positions(jnp.broadcast_to(jnp.arange(nv, dtype=jnp.float32), (b, nv)), SC)
    apos = strata_rope.audio_positions(jnp.broadcast_to(jnp.arange(na, dtype=jnp.float32), (b, na)), SC)
    video = StreamInput(
        latent=noisy_v[:, :nv].reshape(b, nv * ft, -1), sigma=sigma,
        timesteps=jnp.broadcast_to(sigma[:, None], (b, nv * ft)), positions=vpos,
        context=shot.video_context, context_mask=shot.context_mask,
    )
    audio = StreamInput(
        latent=noisy_a[:, :na], sigma=sigma, timesteps=jnp.broadcast_to(sigma[:, None], (b, na)), positions=apos,
        context=shot.audio_context, context_mask=shot.context_mask,
    )
    return video, audio


# shot 0 of both stories has padded frames and padded audio (5 of 6 frames, 6 of 8 audio latents); same shapes in
# 3a / 3b / 6 so the jitted functions compile once per worker
N_FRAMES, N_AUDIO = 5, 6

