"""The story model: the LTX backbone plus UnityShots' own parameter group, and one shot's forward pass.

Parameters: `backbone` (exactly `LTXModel`, loaded from a converted LTX checkpoint) and `memory` (new: the
cut-type embeddings of both streams and the content-aware gate MLP). At initialisation the cut embeddings
are zero, so with no memory a shot is computed exactly as by the plain transformer.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.inputs import Perturbations
from unityshots_jax.ltx.transformer import LTXModel
from unityshots_jax.story.boundary_gate import StmRefinement, gate_coefficients
from unityshots_jax.story.cut_prior import CutEmbedding
from unityshots_jax.story.shot_sequence import References, ShotConditioning, build_inputs, shot_outputs, shot_token_valid
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_state import StoryState, pooled_shot


class MemoryParams(nnx.Module):
    """UnityShots' new parameters, a group of their own (own learning rate, trainable with a frozen backbone)."""

    def __init__(self, ltx: LTXConfig, story: StoryConfig, rngs: nnx.Rngs):
        self.cut_video = CutEmbedding(ltx.video.dim, story.cut_priors)
        self.cut_audio = CutEmbedding(ltx.audio.dim, story.cut_priors)
        self.stm_refinement = StmRefinement(story.latent_channels, story.gate, story.cut_priors, rngs)


class StoryModel(nnx.Module):
    def __init__(self, ltx: LTXConfig, story: StoryConfig, rngs: nnx.Rngs):
        if ltx.model_type != "audio_video":
            raise ValueError(f"story model: needs an audio_video backbone, got {ltx.model_type}")
        if ltx.video.in_channels != story.latent_channels or ltx.audio.in_channels != story.audio_channels:
            raise ValueError(
                f"story model: latent channels {story.latent_channels}/{story.audio_channels} do not match the "
                f"backbone's {ltx.video.in_channels}/{ltx.audio.in_channels}"
            )
        self.ltx_cfg, self.story_cfg = ltx, story
        self.backbone = LTXModel(ltx, rngs)
        self.memory = MemoryParams(ltx, story, rngs)


def build_story_model(ltx: LTXConfig, story: StoryConfig, rngs: nnx.Rngs) -> StoryModel:
    with nnx.use_eager_sharding(False):
        return StoryModel(ltx, story, rngs)


def abstract_story_model(ltx: LTXConfig, story: StoryConfig) -> StoryModel:
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: StoryModel(ltx, story, nnx.Rngs(0)))


def memory_gains(
    model: StoryModel, noisy_video: jnp.ndarray, shot: ShotConditioning, state: StoryState
) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """(g_ltm, ρ·g_stm, ρ), each `[batch]`, for the shot about to be denoised from `noisy_video`."""
    gate = model.story_cfg.gate
    g_ltm, g_stm = gate_coefficients(shot.boundary, gate)
    if gate.learned_rho:
        rho = model.memory.stm_refinement(state.prev_pool, pooled_shot(noisy_video, shot.n_frames), shot.cut_strength)
    else:
        rho = jnp.ones_like(g_stm)
    return g_ltm, g_stm * rho, rho


def shot_velocity(
    model: StoryModel,
    noisy_video: jnp.ndarray,
    noisy_audio: jnp.ndarray,
    sigma: jnp.ndarray,
    shot: ShotConditioning,
    refs: References,
    state: StoryState,
    perturbations: Perturbations | None = None,
    execution: ExecutionConfig = ExecutionConfig(),
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Velocities of the shot block: video `[batch, F, H, W, C]`, audio `[batch, Fa, Ca]`.

    noisy_video `[batch, F, H, W, C]` (an I2V shot's frame 0 already clean), noisy_audio `[batch, Fa, Ca]`,
    sigma `[batch]`. The memory copies are gated here; the state is not changed.
    """
    cfg = model.story_cfg
    g_ltm, g_stm, _ = memory_gains(model, noisy_video, shot, state)
    offsets = (model.memory.cut_video(shot.cut_strength), model.memory.cut_audio(shot.cut_strength))
    video, audio = build_inputs(cfg, noisy_video, noisy_audio, sigma, shot, refs, state, g_ltm, g_stm, offsets)
    v, a = model.backbone(video, audio, perturbations, execution)
    return shot_outputs(cfg, v, a)


def zero_padding(video: jnp.ndarray, audio: jnp.ndarray, shot: ShotConditioning, cfg: StoryConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Zero the padded frames of shot outputs (video `[batch, F, H, W, C]`, audio `[batch, Fa, Ca]`) and whole
    padding shots."""
    v_ok, a_ok = shot_token_valid(shot, cfg)
    b = video.shape[0]
    v_ok = v_ok.reshape(b, cfg.video_frames, cfg.height, cfg.width, 1) * shot.valid.reshape(b, 1, 1, 1, 1)
    a_ok = a_ok[..., None] * shot.valid.reshape(b, 1, 1)
    return video * v_ok.astype(video.dtype), audio * a_ok.astype(audio.dtype)
