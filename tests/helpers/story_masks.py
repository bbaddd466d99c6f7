"""The story model's real attention masks, built by the story code itself (`shot_sequence.build_inputs`), and the
attention calls the transformer makes with them — for kernel comparisons (splash vs dense, sharded vs one device).

Four transformer rows, two shots of two stories:
  row 0  story A, shot 0, T2V, 5 of 6 frames, 6 of 8 audio latents; no memory yet (LTM and STM hidden), the
         reference image hidden (not R2V), reference voice half padding;
  row 1  story B, shot 0, R2V (reference image visible), 4 of 6 frames; voice dropped (all hidden);
  row 2  story A, shot 1, R2V with memory (LTM, STM visible), all frames;
  row 3  story B, shot 1, I2V with memory, reference hidden, 5 of 8 audio latents.
The text mask hides the last text token of some shots.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers.story_fixtures import LTX, SC, noisy_shot, shot_at, story  # noqa: E402
from unityshots_jax.ltx.attention_mask import AttentionMask  # noqa: E402
from unityshots_jax.ltx.inputs import StreamInput  # noqa: E402
from unityshots_jax.story.shot_sequence import build_inputs  # noqa: E402
from unityshots_jax.story.story_state import init_state  # noqa: E402

BATCH = 4


def story_stream_inputs(seed: int = 0) -> tuple[StreamInput, StreamInput]:
    """(video, audio) transformer inputs of the four rows above, concatenated on batch."""
    inputs = story(SC, 2, [["t2v", "r2v"], ["r2v", "i2v"]], seed=seed, n_frames=[[5, 6], [4, 5]],
                   n_audio=[[6, 8], [7, 5]], ref_audio_mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0]], np.float32))
    rows = []
    for n in range(2):
        shot = shot_at(inputs, n)
        state = init_state(SC, 2).replace(shots_done=jnp.full((2,), n, jnp.int32))
        state = state.replace(ltm=jnp.ones_like(state.ltm), tail=jnp.ones_like(state.tail))
        noisy_v, noisy_a, sigma = noisy_shot(2, seed=seed + n)
        ones = jnp.ones((2,), jnp.float32)
        rows.append(build_inputs(SC, noisy_v, noisy_a, sigma, shot, inputs.refs, state, ones, ones))
    cat = lambda *xs: None if xs[0] is None else jnp.concatenate(xs, 0)  # noqa: E731
    video = jax.tree.map(cat, rows[0][0], rows[1][0], is_leaf=lambda x: x is None)
    audio = jax.tree.map(cat, rows[0][1], rows[1][1], is_leaf=lambda x: x is None)
    return video, audio


def mask_layout() -> dict[str, np.ndarray]:
    """The visible-key vectors per row, for asserting that the cases hold what the docstring says."""
    video, audio = story_stream_inputs()
    return {"video": np.asarray(video.token_mask), "audio": np.asarray(audio.token_mask),
            "text": np.asarray(video.context_mask)}


def attention_calls(seed: int = 0) -> dict[str, tuple]:
    """{name: (q, k, v, mask)} for every attention of a block, shaped as the transformer calls its kernel:
    video / audio self-attention, audio→video and video→audio, and the video text cross-attention."""
    video, audio = story_stream_inputs()
    tv, ta, ts = video.latent.shape[1], audio.latent.shape[1], video.context.shape[1]
    hv, dv, ha, da = LTX.video.heads, LTX.video.head_dim, LTX.audio.heads, LTX.audio.head_dim
    keys = iter(jax.random.split(jax.random.key(seed), 16))
    rnd = lambda t, h, d: jax.random.normal(next(keys), (BATCH, t, h, d), jnp.float32)  # noqa: E731
    vmask, amask = AttentionMask(video.token_mask), AttentionMask(audio.token_mask)
    return {
        "video_self": (rnd(tv, hv, dv), rnd(tv, hv, dv), rnd(tv, hv, dv), vmask),
        "audio_self": (rnd(ta, ha, da), rnd(ta, ha, da), rnd(ta, ha, da), amask),
        "audio_to_video": (rnd(tv, ha, da), rnd(ta, ha, da), rnd(ta, ha, da), amask),
        "video_to_audio": (rnd(ta, ha, da), rnd(tv, ha, da), rnd(tv, ha, da), vmask),
        "video_text": (rnd(tv, hv, dv), rnd(ts, hv, dv), rnd(ts, hv, dv), AttentionMask(video.context_mask)),
    }


def output_and_grads(kernel, q, k, v, mask, seed: int = 9):
    """(output, (dq, dk, dv)) of `sum(kernel(q, k, v, mask) · w)` for a fixed random w, jitted."""
    w = jax.random.normal(jax.random.key(seed), q.shape, jnp.float32)
    loss = lambda q, k, v: jnp.sum(kernel(q, k, v, mask) * w)  # noqa: E731
    out = jax.jit(lambda q, k, v: kernel(q, k, v, mask))(q, k, v)
    return out, jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
