"""The Shots-Forcing loss: a story unrolled with teacher forcing through the sampler's own shot scan.

For every shot n (a `jax.lax.scan`, the same `enter_shot` / `shot_velocity` / `finish_shot` the sampler uses):
write the LTM for the boundary entering shot n, pick the shot's conditioning mode (I2V / T2V / R2V, default
0.5 / 0.3 / 0.2, among the modes the record allows), drop the reference voice with probability 10 %, noise the
ground-truth latents at σ ~ the LTX trainer's distribution, predict the velocity, and score it against
ε − x0 on the shot's own noisy tokens. Then the memory for shot n + 1 is written from the ground-truth latents
of shot n (teacher forcing). The loss covers every shot or only the last one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from unityshots_jax.data.story_batch import ShotTargets, StoryBatch, training_story
from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.story.shot_sequence import T2V, ShotConditioning, loss_masks, with_first_frame
from unityshots_jax.story.story_model import StoryModel, shot_velocity
from unityshots_jax.story.story_state import enter_shot, finish_shot, init_state
from unityshots_jax.train.timestep_sampling import sample_sigmas


# The loss reads the data pipeline's batch as it is (a flax struct, so numpy leaves or device arrays alike).
TrainBatch = StoryBatch


def to_device(batch: StoryBatch) -> StoryBatch:
    """The batch with every leaf as a jax array (on the default device; `trainer` places global batches itself)."""
    return jax.tree.map(jnp.asarray, batch)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """mode_probs: (T2V, I2V, R2V) sampling probabilities per shot (paper: 0.3, 0.5, 0.2), renormalised over the
    modes a shot allows; ref_audio_dropout: probability of hiding the reference voice for a shot; loss_on: "all"
    shots or only the "last" valid one; timesteps: "shifted_logit_normal" (LTX trainer) or "uniform";
    caption_dropout: per story and shot, replace the text by the empty text — zero contexts with only the first token
    attended, which is what the toy text encoder gives for "" and what generation passes as the negative prompt
    of classifier-free guidance; shift_tokens: the token count of the σ distribution's shift (0 = the shot's; a
    larger count trains more at high noise, where layout and identity are decided); remat_shots:
    keep only each shot's carried state for the backward (the scan over shots otherwise stores every shot's
    activations, so memory grows with the number of shots)."""

    mode_probs: tuple[float, float, float] = (0.3, 0.5, 0.2)
    ref_audio_dropout: float = 0.1
    loss_on: str = "all"
    timesteps: str = "shifted_logit_normal"
    audio_weight: float = 1.0
    caption_dropout: float = 0.0  # probability of training a shot on the empty text (enables classifier-free guidance)
    shift_tokens: int = 0  # the token count that shifts the σ distribution (0: the shot's own; 4096: LTX's maximum)
    remat_shots: bool = False  # recompute each shot in the backward: activations stop growing with the shot count


def _sample_modes(key, allowed: jnp.ndarray, has_ref: jnp.ndarray, probs) -> jnp.ndarray:
    """allowed `[B, 3]` bool, has_ref `[B]` → modes `[B]` (R2V needs a reference image)."""
    ok = allowed.astype(bool) & jnp.stack([jnp.ones_like(has_ref, bool), jnp.ones_like(has_ref, bool), has_ref > 0], -1)
    ok = ok.at[:, T2V].set(ok[:, T2V] | ~ok.any(-1))  # nothing allowed → plain text-to-video
    logits = jnp.where(ok, jnp.log(jnp.asarray(probs, jnp.float32))[None], -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _masked_mse(err: jnp.ndarray, mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Sum of squared error over masked positions (all channels) and the count of masked values, per sample."""
    se = jnp.sum(jnp.square(err.astype(jnp.float32)), axis=-1) * mask
    axes = tuple(range(1, se.ndim))
    return jnp.sum(se, axes), jnp.sum(mask, axes) * err.shape[-1]


def story_loss(
    model: StoryModel, batch: TrainBatch, key: jax.Array, loss_cfg: LossConfig, execution: ExecutionConfig
) -> tuple[jnp.ndarray, dict]:
    """Mean flow-matching loss over the supervised shots of the batch, and metrics (loss_video, loss_audio)."""
    cfg = model.story_cfg
    b = batch.n_frames.shape[0]
    dtype = jnp.dtype(execution.dtype)
    story = training_story(batch, dtype)
    refs = story.refs
    last = jnp.sum(batch.shot_valid.astype(jnp.int32), axis=1) - 1
    shot_tokens = cfg.shift_tokens(loss_cfg.shift_tokens)

    def step(carry, target: ShotTargets):
        state, key = carry
        x0_video, x0_audio, shot = target.video, target.audio, target.cond
        key, k_mode, k_drop, k_sig, k_nv, k_na = jax.random.split(key, 6)
        mode = _sample_modes(k_mode, target.allowed_modes, refs.image_valid, loss_cfg.mode_probs)
        shot = shot.replace(mode=mode)
        if loss_cfg.caption_dropout > 0:  # own key (folded), so runs without dropout keep their random streams
            shot = _drop_captions(shot, jax.random.fold_in(k_drop, 1), loss_cfg.caption_dropout)
        state = enter_shot(state, shot.boundary, shot.valid, cfg)
        keep_voice = jax.random.uniform(k_drop, (b,)) >= loss_cfg.ref_audio_dropout
        shot_refs = refs.replace(audio_mask=refs.audio_mask * keep_voice[:, None].astype(refs.audio_mask.dtype))
        sigma = sample_sigmas(k_sig, (b,), shot_tokens, loss_cfg.timesteps)
        eps_v = jax.random.normal(k_nv, x0_video.shape, jnp.float32)
        eps_a = jax.random.normal(k_na, x0_audio.shape, jnp.float32)
        s5 = sigma.reshape(b, 1, 1, 1, 1)
        xt_video = with_first_frame(((1 - s5) * x0_video + s5 * eps_v).astype(dtype), shot)
        xt_audio = ((1 - sigma[:, None, None]) * x0_audio + sigma[:, None, None] * eps_a).astype(dtype)
        v_video, v_audio = shot_velocity(model, xt_video, xt_audio, sigma, shot, shot_refs, state, None, execution)
        mask_v, mask_a = loss_masks(shot, cfg)
        weight = shot.valid.astype(jnp.float32)
        if loss_cfg.loss_on == "last":
            weight = weight * (target.index == last).astype(jnp.float32)
        sv, cv = _masked_mse(v_video.astype(jnp.float32) - (eps_v - x0_video), mask_v)
        sa, ca = _masked_mse(v_audio.astype(jnp.float32) - (eps_a - x0_audio), mask_a)
        state = finish_shot(state, x0_video.astype(state.tail.dtype), shot.n_frames, shot.valid, cfg)
        return (state, key), (sv * weight, cv * weight, sa * weight, ca * weight)

    state0 = init_state(cfg, b, dtype)
    body = jax.checkpoint(step, prevent_cse=False) if loss_cfg.remat_shots else step
    _, (sv, cv, sa, ca) = jax.lax.scan(body, (state0, key), story.shots)
    loss_video = jnp.sum(sv) / jnp.maximum(jnp.sum(cv), 1.0)
    loss_audio = jnp.sum(sa) / jnp.maximum(jnp.sum(ca), 1.0)
    loss = loss_video + loss_cfg.audio_weight * loss_audio
    return loss, {"loss_video": loss_video, "loss_audio": loss_audio}


def _drop_captions(shot: ShotConditioning, key: jax.Array, p: float) -> ShotConditioning:
    """Per story, with probability p, the shot's text replaced by the empty text (zero contexts, only the first
    token attended). contexts `[B, S, ·]`, context_mask `[B, S]`."""
    b = shot.context_mask.shape[0]
    drop = jax.random.uniform(key, (b,)) < p
    cmask = shot.context_mask
    return shot.replace(
        video_context=jnp.where(drop[:, None, None], jnp.zeros_like(shot.video_context), shot.video_context),
        audio_context=jnp.where(drop[:, None, None], jnp.zeros_like(shot.audio_context), shot.audio_context),
        context_mask=jnp.where(drop[:, None], (jnp.arange(cmask.shape[1]) == 0).astype(cmask.dtype)[None], cmask),
    )
