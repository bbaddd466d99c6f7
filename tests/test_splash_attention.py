"""attention="splash" (Pallas splash attention, interpret mode on CPU) equals the dense kernel on the story model's
real masks — padded shots, hidden reference, memory strata, dropped voice, text padding — built by the story code
(tests/helpers/story_masks.py): every attention of a block, then the whole transformer with gradients, on one
device and under shard_map over 8 forced CPU devices."""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import training_runs
from helpers.story_fixtures import SC, backbone_split, default_model
from helpers.story_masks import attention_calls, mask_layout, output_and_grads, rel, story_stream_inputs
from unityshots_jax.ltx.attention_kernels import attention_kernel
from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.splash_attention import splash_block, splash_block_sizes
from unityshots_jax.ltx.transformer import forward

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "splash_sharded.py")
CALLS = ("video_self", "audio_self", "audio_to_video", "video_to_audio", "video_text")


def test_the_cases_hold_the_story_mask_patterns():
    m = mask_layout()
    ft, f = SC.frame_tokens, SC.video_frames
    video = m["video"].reshape(4, -1, ft)[:, :, 0]  # one value per latent frame: shot, reference, LTM, STM
    ref, mem = f, slice(f + SC.ref_image_frames, None)
    assert video[0, :f].tolist() == [1, 1, 1, 1, 1, 0] and video[1, :f].tolist() == [1, 1, 1, 1, 0, 0]  # padded frames
    assert video[:, ref].tolist() == [0, 1, 1, 0]  # reference image visible only in R2V
    assert not video[:2, mem].any() and video[2:, mem].all()  # memory strata hidden at shot 0, visible after
    audio = m["audio"]
    assert audio[0, :SC.audio_frames].sum() == 6 and not audio[1, SC.audio_frames:].any()  # padding, dropped voice
    assert m["text"].min() == 0 and m["text"].max() == 1  # some text padding


@pytest.mark.parametrize("name", CALLS)
def test_splash_matches_dense_on_story_masks(name):
    q, k, v, mask = attention_calls()[name]
    ref, ref_grads = output_and_grads(attention_kernel("dense"), q, k, v, mask)
    out, grads = output_and_grads(attention_kernel("splash"), q, k, v, mask)
    assert rel(out, ref) <= 2e-6
    for label, g, r in zip("qkv", grads, ref_grads):
        assert np.all(np.isfinite(np.asarray(g)))
        assert rel(g, r) <= 1e-5, f"d{label}: {rel(g, r)}"


def test_unmasked_block_aligned_call_runs_without_segment_ids():
    keys = jax.random.split(jax.random.key(1), 3)
    q, k, v = (jax.random.normal(key, (2, 128, 2, 8)) for key in keys)  # 128 keys: no padding, no mask
    ref, ref_grads = output_and_grads(attention_kernel("dense"), q, k, v, None)
    out, grads = output_and_grads(attention_kernel("splash"), q, k, v, None)
    assert rel(out, ref) <= 2e-6 and max(rel(g, r) for g, r in zip(grads, ref_grads)) <= 1e-5


def test_transformer_with_splash_matches_dense_forward_and_gradients():
    graphdef, params = backbone_split(*default_model())
    video, audio = story_stream_inputs()

    def run(execution):
        def loss(p):
            v, a = forward(graphdef, p, video, audio, None, execution)
            wv, wa = (jnp.cos(jnp.arange(x.size, dtype=jnp.float32)).reshape(x.shape) for x in (v, a))
            return jnp.sum(v * wv) + jnp.sum(a * wa), (v, a)

        return jax.jit(jax.grad(loss, has_aux=True))(params)

    ref_grads, ref_out = run(ExecutionConfig(attention="dense"))
    grads, out = run(ExecutionConfig(attention="splash"))
    assert max(rel(o, r) for o, r in zip(out, ref_out)) <= 2e-6
    worst = max(rel(g, r) for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads)))
    assert worst <= 5e-5, worst


def test_block_sizes_follow_the_sequence_length():
    # multiples of 128 (lane width); the largest of 512 / 384 / 256 / 128 padding by at most 1/32 of the length
    assert splash_block(1) == (128, 128) and splash_block(78) == (128, 128)
    assert splash_block(300) == (384, 384) and splash_block(513) == (128, 640)
    assert splash_block(23_716) == (512, 24_064)  # a 22B story shot: 47 blocks of 512, 1.5 % padding
    assert splash_block(23_936) == (512, 24_064)  # 187 lane groups (11·17): still 512, not 187 blocks of 128
    assert splash_block(4096) == (512, 4096)
    sizes = splash_block_sizes(300, 1024)
    assert (sizes.block_q, sizes.block_kv, sizes.block_kv_compute) == (384, 512, 512)
    assert sizes.use_fused_bwd_kernel and sizes.has_backward_blocks


def test_sharded_splash_matches_dense():
    """shard_map over data 2 × context 2 × tensor 2: queries split over context, K/V gathered (3 all-gathers: K, V
    and the visible-key mask), nothing else communicated."""
    code, out, err = training_runs.run([sys.executable, SCRIPT], timeout=900, devices=8)
    assert code == 0, err[-4000:]
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [row["attention"] for row in rows] == list(CALLS)
    for row in rows:
        assert row["devices"] == 8
        assert row["out_rel"] <= 2e-6 and row["grad_rel"] <= 1e-5, row
        assert row["collectives"]["all-gather"] == 3, row
        assert sum(row["collectives"].values()) == 3, row
