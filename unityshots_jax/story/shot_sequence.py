"""The conditioning sequence of one shot (paper Eq. 1) as transformer inputs, and what comes back out.

Video tokens: [current shot (F·H·W), reference image (R·H·W), LTM (L·H·W), STM (P·H·W)];
audio tokens: [current shot (Fa), reference voice (Fr)]. Attention is permutation-equivariant (positions come
from RoPE, not order), so putting the supervised block first is the same model as Eq. 1's order and makes the
outputs a leading slice. Conditioning tokens are clean (timestep 0) and their outputs are discarded; tokens a
shot does not use (padding frames, the reference image outside R2V, empty memory at shot 0, a dropped or
padded reference voice) are hidden with the token mask.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from unityshots_jax.ltx.inputs import StreamInput
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_state import StoryState
from unityshots_jax.story.strata_rope import audio_positions, sequence_audio_indices, sequence_frame_indices, video_positions

T2V, I2V, R2V = 0, 1, 2
MODES = {"t2v": T2V, "i2v": I2V, "r2v": R2V}


@struct.dataclass
class ShotConditioning:
    """What one shot is conditioned on (batched over stories).

    video_context `[batch, text_tokens, video_context_dim]`, audio_context `[batch, text_tokens, audio_context_dim]`,
    context_mask `[batch, text_tokens]`; mode `[batch]` (T2V / I2V / R2V); first_frame `[batch, H, W, C]` (I2V);
    n_frames / n_audio `[batch]` valid latent frames; cut_strength `[batch]` τ; boundary `[batch]` b̄ in [0, 1];
    valid `[batch]` whether the shot exists (stories shorter than max_shots are padded).
    """

    video_context: jnp.ndarray
    audio_context: jnp.ndarray
    context_mask: jnp.ndarray
    mode: jnp.ndarray
    first_frame: jnp.ndarray
    n_frames: jnp.ndarray
    n_audio: jnp.ndarray
    cut_strength: jnp.ndarray
    boundary: jnp.ndarray
    valid: jnp.ndarray


@struct.dataclass
class References:
    """Per-story references: identity image latents `[batch, R, H, W, C]` with `image_valid` `[batch]`;
    reference voice audio latents `[batch, Fr, Ca]` with `audio_mask` `[batch, Fr]` (0 = padding or dropped)."""

    image: jnp.ndarray
    image_valid: jnp.ndarray
    audio: jnp.ndarray
    audio_mask: jnp.ndarray


def _tokens(x: jnp.ndarray) -> jnp.ndarray:
    """`[batch, frames, H, W, C]` → `[batch, frames·H·W, C]` (frame-major, then h, then w, as LTX patchifies)."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def shot_video_mask(shot: ShotConditioning, cfg: StoryConfig) -> jnp.ndarray:
    """`[batch, F·H·W, 1]` denoise mask of the shot's tokens: 0 on an I2V shot's first frame, else 1."""
    frame = jnp.arange(cfg.video_frames)[None, :]
    clean = (shot.mode[:, None] == I2V) & (frame == 0)
    m = jnp.repeat(jnp.where(clean, 0.0, 1.0), cfg.frame_tokens, axis=1)
    return m[..., None].astype(jnp.float32)


def shot_token_valid(shot: ShotConditioning, cfg: StoryConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(`[batch, F·H·W]`, `[batch, Fa]`) 1 for the shot's real (unpadded) video and audio tokens."""
    v = jnp.arange(cfg.video_frames)[None, :] < shot.n_frames[:, None]
    a = jnp.arange(cfg.audio_frames)[None, :] < shot.n_audio[:, None]
    return jnp.repeat(v, cfg.frame_tokens, axis=1).astype(jnp.float32), a.astype(jnp.float32)


def with_first_frame(noisy: jnp.ndarray, shot: ShotConditioning) -> jnp.ndarray:
    """The shot latent `[batch, F, H, W, C]` with an I2V shot's frame 0 replaced by its clean first frame."""
    is_i2v = (shot.mode == I2V)[:, None, None, None]
    frame0 = jnp.where(is_i2v, shot.first_frame.astype(noisy.dtype), noisy[:, 0])
    return noisy.at[:, 0].set(frame0)


def build_inputs(
    cfg: StoryConfig,
    noisy_video: jnp.ndarray,
    noisy_audio: jnp.ndarray,
    sigma: jnp.ndarray,
    shot: ShotConditioning,
    refs: References,
    state: StoryState,
    ltm_gain: jnp.ndarray,
    stm_gain: jnp.ndarray,
    cut_offsets: tuple[jnp.ndarray | None, jnp.ndarray | None] = (None, None),
) -> tuple[StreamInput, StreamInput]:
    """Transformer inputs of one shot.

    noisy_video `[batch, F, H, W, C]` (frame 0 already the clean first frame for I2V), noisy_audio
    `[batch, Fa, Ca]`, sigma `[batch]`; ltm_gain / stm_gain `[batch]` scale the memory copies (g_ltm and ρ·g_stm);
    cut_offsets: the cut-type embeddings `[batch, video_dim]`, `[batch, audio_dim]` added to the timestep
    embedding. Returns (video, audio) `StreamInput`s of `cfg.video_tokens` and `cfg.audio_tokens` tokens.
    """
    b = noisy_video.shape[0]
    dtype = noisy_video.dtype
    ft = cfg.frame_tokens
    gain = lambda g: g.astype(dtype).reshape(b, 1, 1, 1, 1)  # noqa: E731
    blocks = [
        _tokens(noisy_video),
        _tokens(refs.image.astype(dtype)),
        _tokens(state.ltm.astype(dtype) * gain(ltm_gain)),
        _tokens(state.tail.astype(dtype) * gain(stm_gain)),
    ]
    shot_valid, audio_valid = shot_token_valid(shot, cfg)
    use_ref = ((shot.mode == R2V) & (refs.image_valid > 0)).astype(jnp.float32)
    mem = state.has_memory.astype(jnp.float32)
    ltm_on, stm_on = (mem * float(cfg.memory_slots in slots) for slots in (("both", "ltm"), ("both", "stm")))
    ones = lambda n, on: jnp.broadcast_to(on[:, None], (b, n)).astype(jnp.float32)  # noqa: E731
    token_mask = jnp.concatenate(
        [shot_valid, ones(cfg.ref_image_frames * ft, use_ref), ones(cfg.ltm_frames * ft, ltm_on), ones(cfg.stm_frames * ft, stm_on)],
        axis=1,
    )
    denoise = jnp.concatenate([shot_video_mask(shot, cfg)[..., 0], jnp.zeros((b, token_mask.shape[1] - shot_valid.shape[1]))], 1)
    idx = sequence_frame_indices(shot.n_frames, cfg)
    positions = jnp.concatenate([video_positions(idx[k], cfg) for k in ("shot", "ref_image", "ltm", "stm")], axis=2)
    sigma32 = sigma.astype(jnp.float32)
    video = StreamInput(
        latent=jnp.concatenate(blocks, axis=1),
        sigma=sigma32,
        timesteps=sigma32[:, None] * denoise,
        positions=positions,
        context=shot.video_context,
        context_mask=shot.context_mask,
        token_mask=token_mask,
        timestep_offset=cut_offsets[0],
    )
    aidx = sequence_audio_indices(shot.n_audio, cfg)
    audio = StreamInput(
        latent=jnp.concatenate([noisy_audio, refs.audio.astype(noisy_audio.dtype)], axis=1),
        sigma=sigma32,
        timesteps=jnp.concatenate([jnp.broadcast_to(sigma32[:, None], (b, cfg.audio_frames)), jnp.zeros((b, cfg.ref_audio_frames))], 1),
        positions=jnp.concatenate([audio_positions(aidx["shot"], cfg), audio_positions(aidx["ref_audio"], cfg)], axis=2),
        context=shot.audio_context,
        context_mask=shot.context_mask,
        token_mask=jnp.concatenate([audio_valid, refs.audio_mask.astype(jnp.float32)], axis=1),
        timestep_offset=cut_offsets[1],
    )
    return video, audio


def shot_outputs(cfg: StoryConfig, v_video: jnp.ndarray, v_audio: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The supervised block of the outputs: video `[batch, F, H, W, C]`, audio `[batch, Fa, Ca]`."""
    b = v_video.shape[0]
    video = v_video[:, : cfg.video_frames * cfg.frame_tokens].reshape(b, cfg.video_frames, cfg.height, cfg.width, -1)
    return video, v_audio[:, : cfg.audio_frames]


def loss_masks(shot: ShotConditioning, cfg: StoryConfig) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Training loss masks over the shot block: video `[batch, F, H, W]` (valid, not the I2V first frame) and
    audio `[batch, Fa]`; conditioning tokens are never supervised (they are not in the shot block)."""
    v_valid, a_valid = shot_token_valid(shot, cfg)
    v = v_valid * shot_video_mask(shot, cfg)[..., 0]
    b = v.shape[0]
    return v.reshape(b, cfg.video_frames, cfg.height, cfg.width), a_valid
