"""Caption dropout in the Shots-Forcing loss: a dropped shot sees exactly the empty text (the negative prompt of
classifier-free guidance)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from helpers.story_fixtures import DA, DV, EXEC, SC, story_params
from unityshots_jax.data.random_stories import random_story
from unityshots_jax.data.story_batch import pad_story, stack_examples
from unityshots_jax.train.shots_forcing import LossConfig, story_loss, to_device


def _batch(seed: int):
    rng = np.random.default_rng(seed)
    records = [random_story(SC, rng, video_context_dim=DV, audio_context_dim=DA, k=3) for _ in range(2)]
    return to_device(stack_examples([pad_story(r, SC) for r in records]))


@functools.cache
def _jitted_loss(cfg: LossConfig):
    graphdef, _ = story_params()
    return jax.jit(lambda params, batch: story_loss(nnx.merge(graphdef, params), batch, jax.random.key(3), cfg, EXEC)[0])


def _loss(batch, cfg: LossConfig) -> float:
    _, params = story_params()
    return float(_jitted_loss(cfg)(params, batch))


def test_full_dropout_ignores_the_text_and_equals_the_empty_text():
    batch = _batch(0)
    other = batch.replace(video_context=batch.video_context[::-1] * 3.0, audio_context=-batch.audio_context,
                          context_mask=jnp.ones_like(batch.context_mask))
    empty_mask = jnp.zeros_like(batch.context_mask).at[..., 0].set(1)
    empty = batch.replace(video_context=jnp.zeros_like(batch.video_context), audio_context=jnp.zeros_like(batch.audio_context),
                          context_mask=empty_mask)
    drop = dataclasses.replace(LossConfig(), caption_dropout=1.0)
    a, b = _loss(batch, drop), _loss(other, drop)
    assert a == b
    assert a == _loss(empty, LossConfig())  # dropping = training on the empty text, same noise and modes
    assert _loss(batch, LossConfig()) != _loss(other, LossConfig())

