"""`make_story_inputs`: bad input is refused on the host, before any compute, with the field named."""

from __future__ import annotations

import numpy as np
import pytest

from unityshots_jax.story.shot_sequence import I2V, R2V, T2V
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.story.story_inputs import StoryInputError, make_story_inputs

SC = StoryConfig(
    max_shots=4, video_frames=6, height=2, width=3, latent_channels=16, audio_frames=8, audio_channels=16,
    text_tokens=4, ref_audio_frames=4, frame_limit=32,
)
B, K, S, DV, DA = 2, 3, SC.text_tokens, 32, 16
FRAME = (SC.height, SC.width, SC.latent_channels)


def valid_kwargs() -> dict:
    rng = np.random.default_rng(0)
    return dict(
        video_context=rng.standard_normal((B, K, S, DV)),
        audio_context=rng.standard_normal((B, K, S, DA)),
        context_mask=np.ones((B, K, S), np.int32),
        modes=[["i2v", "t2v", "r2v"], ["T2V", "r2v", "I2V"]],
        cut_strength=[[0.0, 0.4, 1.0], [0.0, 1.0, 0.7]],
        boundary=[[0.0, 0.25, 1.0], [0.0, 0.5, 0.8]],
        n_frames=[[4, 6, 5], [6, 4, 6]],
        n_audio=[[1, 8, 5], [8, 6, 8]],
        first_frame=rng.standard_normal((B, K, *FRAME)),
        ref_image=rng.standard_normal((B, SC.ref_image_frames, *FRAME)),
        ref_audio=rng.standard_normal((B, SC.ref_audio_frames, SC.audio_channels)),
    )


def test_valid_inputs_are_padded_to_max_shots():
    inputs = make_story_inputs(SC, **valid_kwargs())
    assert inputs.num_shots == SC.max_shots and inputs.batch == B
    np.testing.assert_array_equal(inputs.shots.mode[:, 0], [I2V, T2V, R2V, T2V])
    np.testing.assert_array_equal(inputs.shots.mode[:, 1], [T2V, R2V, I2V, T2V])
    np.testing.assert_array_equal(inputs.shots.valid[:, 0], [True, True, True, False])
    np.testing.assert_array_equal(inputs.shots.n_frames[3], [SC.video_frames] * B)
    assert inputs.shots.video_context.shape == (SC.max_shots, B, S, DV)
    assert not np.any(np.asarray(inputs.shots.video_context[3]))
    np.testing.assert_array_equal(inputs.refs.image_valid, [1, 1])
    np.testing.assert_array_equal(inputs.refs.audio_mask, np.ones((B, SC.ref_audio_frames)))
    # integer modes are accepted too; no references → hidden (image_valid 0, audio mask 0)
    kw = valid_kwargs()
    kw.update(modes=[[T2V, I2V, T2V], [I2V, T2V, T2V]], ref_image=None, ref_audio=None)
    inputs = make_story_inputs(SC, **kw)
    np.testing.assert_array_equal(inputs.refs.image_valid, [0, 0])
    assert not np.any(np.asarray(inputs.refs.audio_mask))


def _nan(shape):
    x = np.random.default_rng(1).standard_normal(shape)
    x[(0,) * len(shape)] = np.nan
    return x


BAD = {
    # inconsistent shapes
    "video_context rank": (dict(video_context=np.zeros((B, K, DV))), "video_context"),
    "text tokens": (dict(video_context=np.zeros((B, K, S + 1, DV))), "video_context"),
    "audio_context shots": (dict(audio_context=np.zeros((B, K + 1, S, DA))), "audio_context"),
    "context_mask shape": (dict(context_mask=np.ones((B, K, S + 2))), "context_mask"),
    "modes shape": (dict(modes=[["t2v"] * K]), "modes"),
    "boundary shape": (dict(boundary=np.zeros((B, K + 1))), "boundary"),
    "n_frames shape": (dict(n_frames=np.full((B,), 5)), "n_frames"),
    "first_frame size": (dict(first_frame=np.zeros((B, K, SC.height + 1, SC.width, 16))), "first_frame"),
    "ref_audio channels": (dict(ref_audio=np.zeros((B, SC.ref_audio_frames, 8))), "ref_audio"),
    "ref_audio_mask shape": (dict(ref_audio_mask=np.ones((B, SC.ref_audio_frames + 1))), "ref_audio_mask"),
    # too many shots
    "too many shots": (dict(video_context=np.zeros((B, 5, S, DV)), audio_context=np.zeros((B, 5, S, DA))), "shots"),
    "zero shots": (dict(video_context=np.zeros((B, 0, S, DV))), "shots"),
    # modes
    "unknown mode": (dict(modes=[["i2v", "t2v", "v2v"], ["t2v", "t2v", "t2v"]]), "modes"),
    "mode int": (dict(modes=[[0, 1, 3], [0, 0, 0]]), "modes"),
    # ranges
    "boundary > 1": (dict(boundary=[[0.0, 1.5, 0.2], [0.0, 0.0, 0.0]]), "boundary"),
    "boundary < 0": (dict(boundary=[[0.0, -0.1, 0.2], [0.0, 0.0, 0.0]]), "boundary"),
    "cut > 1": (dict(cut_strength=[[0.0, 0.4, 1.2], [0.0, 0.0, 0.0]]), "cut_strength"),
    "cut < 0": (dict(cut_strength=[[-0.4, 0.4, 1.0], [0.0, 0.0, 0.0]]), "cut_strength"),
    "n_frames too small": (dict(n_frames=[[3, 6, 5], [6, 4, 6]]), "n_frames"),
    "n_frames too large": (dict(n_frames=[[4, 7, 5], [6, 4, 6]]), "n_frames"),
    "n_audio zero": (dict(n_audio=[[0, 8, 5], [8, 6, 8]]), "n_audio"),
    "n_audio too large": (dict(n_audio=[[1, 9, 5], [8, 6, 8]]), "n_audio"),
    # mode requirements
    "i2v without first_frame": (dict(first_frame=None), "first_frame"),
    "r2v without ref_image": (dict(ref_image=None), "ref_image"),
    "ref_image wrong size": (dict(ref_image=np.zeros((B, SC.ref_image_frames, SC.height, SC.width + 1, 16))), "ref_image"),
    "ref_image two frames": (dict(ref_image=np.zeros((B, 2, *FRAME))), "ref_image"),
    # non-finite values
    "NaN audio_context": (dict(audio_context=_nan((B, K, S, DA))), "audio_context"),
    "inf first_frame": (dict(first_frame=np.full((B, K, *FRAME), np.inf)), "first_frame"),
    "NaN boundary": (dict(boundary=[[0.0, np.nan, 0.2], [0.0, 0.0, 0.0]]), "boundary"),
    "NaN negative context": (dict(negative_video_context=_nan((B, S, DV))), "negative_video_context"),
}


@pytest.mark.parametrize("case", list(BAD.values()), ids=list(BAD))
def test_bad_input_names_the_field(case):
    override, field = case
    kw = valid_kwargs()
    kw.update(override)
    with pytest.raises(StoryInputError, match=field):
        make_story_inputs(SC, **kw)


def test_modes_without_i2v_or_r2v_need_no_first_frame_or_ref_image():
    kw = valid_kwargs()
    kw.update(modes=[["t2v"] * K] * B, first_frame=None, ref_image=None)
    inputs = make_story_inputs(SC, **kw)
    assert not np.any(np.asarray(inputs.shots.first_frame))


def test_nan_in_video_context_is_refused():
    kw = valid_kwargs()
    kw.update(video_context=_nan((B, K, S, DV)))
    with pytest.raises(StoryInputError, match="video_context"):
        make_story_inputs(SC, **kw)


def test_training_batch_and_generation_inputs_share_padding_boundary_and_layout():
    """One story through the training path (record → pad_story → StoryBatch → training_story) and through the
    generation path (make_story_inputs with the same arrays and boundary signals): the shot-major conditioning the
    two scans consume is identical, padding shots included."""
    import dataclasses

    import jax

    from unityshots_jax.data.random_stories import random_story
    from unityshots_jax.data.story_batch import pad_story, stack_examples, training_story

    rng = np.random.default_rng(5)
    record = random_story(SC, rng, video_context_dim=DV, audio_context_dim=DA, k=3)
    record = dataclasses.replace(record, boundary=None, s_vis=rng.uniform(0, 1, 3).astype(np.float32), s_aud=None,
                                 s_beat=np.float32([0.25, 1.0, 0.5]))  # fmt: skip
    story = training_story(stack_examples([pad_story(record, SC)]), np.float32)
    tau = np.asarray(SC.cut_priors, np.float32)[record.cut_type]
    inputs = make_story_inputs(
        SC, video_context=record.video_context[None], audio_context=record.audio_context[None],
        context_mask=record.context_mask[None], modes=np.zeros((1, 3), np.int32), cut_strength=tau[None],
        boundary_signals={"s_vis": record.s_vis[None], "s_beat": record.s_beat[None]},
        n_frames=record.n_frames[None], n_audio=record.n_audio[None],
    )  # fmt: skip
    for name in ("video_context", "audio_context", "context_mask", "mode", "n_frames", "n_audio", "cut_strength",
                 "boundary", "valid"):
        ours, theirs = np.asarray(getattr(story.shots.cond, name)), np.asarray(getattr(inputs.shots, name))
        assert ours.shape == theirs.shape == (SC.max_shots, 1, *ours.shape[2:]), name
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    assert np.asarray(story.shots.cond.valid)[:, 0].tolist() == [True, True, True, False]
    np.testing.assert_array_equal(np.asarray(story.shots.cond.first_frame), np.asarray(story.shots.video)[:, :, 0])
    assert np.asarray(story.shots.allowed_modes)[3, 0].tolist() == [True, False, False]  # padding: T2V only
    assert np.asarray(story.shots.index).tolist() == [0, 1, 2, 3]
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(story))


def test_boundary_score_keeps_the_array_kind():
    import jax.numpy as jnp

    from unityshots_jax.story.boundary_gate import boundary_from_signals, boundary_score

    tau = np.float32([0.0, 0.4, 1.0])
    s = np.float32([0.5, 1.0, 0.2])
    host = boundary_score(tau, s, s, s, SC.gate)
    assert isinstance(host, np.ndarray) and host.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(boundary_score(jnp.asarray(tau), s, s, s, SC.gate)), host)
    np.testing.assert_array_equal(boundary_from_signals(tau, {"s_vis": s, "s_aud": s, "s_beat": s}, SC.gate), host)
    no_signals = boundary_from_signals(tau, {}, SC.gate)
    g = SC.gate
    np.testing.assert_array_equal(no_signals, np.clip(tau * np.float32(g.alpha + g.beta + g.gamma), 0, 1))
    with pytest.raises(ValueError, match="s_other"):
        boundary_from_signals(tau, {"s_other": s}, SC.gate)
