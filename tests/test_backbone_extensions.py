"""Our two backbone extensions (token padding masks, timestep-embedding offsets) leave ltx-core's math intact."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.inputs import make_inputs, random_model
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig, StreamConfig
from unityshots_jax.ltx.transformer import forward

CFG = LTXConfig(
    model_type="audio_video",
    num_layers=2,
    video=StreamConfig(2, 8, 8, 8, 16, (20, 2048, 2048)),
    audio=StreamConfig(2, 4, 8, 8, 8, (20,)),
    av_ca_timestep_scale_multiplier=1000.0,
)


def _pad(stream, extra: int, seed: int):
    """The stream with `extra` junk tokens appended and a token mask hiding them."""
    rng = np.random.default_rng(seed)
    b, t, c = stream.latent.shape
    junk = lambda shape: jnp.asarray(rng.standard_normal(shape) * 10, jnp.float32)  # noqa: E731
    positions = jnp.concatenate([stream.positions, stream.positions[:, :, :extra] + 7.0], axis=2)
    return dataclasses.replace(
        stream,
        latent=jnp.concatenate([stream.latent, junk((b, extra, c))], 1),
        timesteps=jnp.concatenate([stream.timesteps, jnp.full((b, extra), 0.3)], 1),
        positions=positions,
        token_mask=jnp.concatenate([jnp.ones((b, t)), jnp.zeros((b, extra))], 1),
    )


@pytest.mark.parametrize("attention", [pytest.param("dense", marks=pytest.mark.slow), "flash"])  # flash: CPU default
def test_padding_tokens_are_invisible_to_both_streams(attention):
    graphdef, params = random_model(CFG, seed=1)
    video, audio = make_inputs(CFG, batch=2, grid=(2, 2, 3), audio_tokens=6)
    execution = ExecutionConfig(attention=attention, attention_chunk=4)
    ref_v, ref_a = forward(graphdef, params, video, audio, None, execution)
    out_v, out_a = forward(graphdef, params, _pad(video, 5, 2), _pad(audio, 3, 3), None, execution)
    np.testing.assert_allclose(out_v[:, : ref_v.shape[1]], ref_v, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(out_a[:, : ref_a.shape[1]], ref_a, rtol=2e-5, atol=2e-5)
    # and the padding mask is doing the work: without it the junk tokens change the real outputs
    unmasked = dataclasses.replace(_pad(video, 5, 2), token_mask=None)
    changed, _ = forward(graphdef, params, unmasked, audio, None, execution)
    assert np.abs(np.asarray(changed[:, : ref_v.shape[1]] - ref_v)).max() > 1e-3


def test_timestep_offset_zero_is_exact_and_nonzero_acts_everywhere():
    graphdef, params = random_model(CFG, seed=2)
    video, audio = make_inputs(CFG)
    ref_v, ref_a = forward(graphdef, params, video, audio)
    zero_v = dataclasses.replace(video, timestep_offset=jnp.zeros((2, CFG.video.dim)))
    zero_a = dataclasses.replace(audio, timestep_offset=jnp.zeros((2, CFG.audio.dim)))
    out_v, out_a = forward(graphdef, params, zero_v, zero_a)
    np.testing.assert_array_equal(out_v, ref_v)
    np.testing.assert_array_equal(out_a, ref_a)
    bump = jnp.asarray(np.random.default_rng(0).standard_normal((2, CFG.video.dim)), jnp.float32)
    moved_v, moved_a = forward(graphdef, params, dataclasses.replace(video, timestep_offset=bump), audio)
    assert np.all(np.abs(np.asarray(moved_v - ref_v)).max(axis=(1, 2)) > 1e-3)  # every sample's video moves
    assert np.abs(np.asarray(moved_a - ref_a)).max() > 1e-4  # and the audio, through the A<->V attention
