"""Gemma-3 text tower: every hidden state vs transformers 4.57.6 on tiny random Hugging Face directories.

Float32 on CPU against the reference run in float32 and float64 (`assert_parity`); left padding, sliding windows
shorter than the sequence, GQA ratios 1/2/3, multimodal and text-only checkpoints, single file and shards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.text_fixtures import cases, gemma_dirs, left_padded_inputs  # noqa: F401  (fixture)
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.reference import tiny_text
from unityshots_jax.text.gemma3.config import read_config
from unityshots_jax.text.gemma3.loading import load_tower
from unityshots_jax.text.gemma3.model import hidden_states

torch.set_num_threads(1)


def _ours(directory: str, ids: np.ndarray, mask: np.ndarray, dtype: str = "float32") -> np.ndarray:
    from flax import nnx

    graphdef, params = nnx.split(load_tower(directory, dtype))
    return np.asarray(hidden_states(graphdef, params, ids, mask, dtype).astype("float32"))


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_every_hidden_state_matches_transformers(gemma_dirs, name):
    directory = gemma_dirs(name)
    case = cases()[name]
    ids, mask = left_padded_inputs(case)
    ref32 = tiny_text.gemma_states(tiny_text.load_gemma(directory, double=False), ids, mask)
    ref64 = tiny_text.gemma_states(tiny_text.load_gemma(directory, double=True), ids, mask)
    ours = _ours(directory, ids, mask)
    assert ours.shape == (case.text["num_hidden_layers"] + 1, 3, case.tokens, case.text["hidden_size"])
    for i in range(ours.shape[0]):  # all rows, padding rows included (SDPA's zero output for fully masked rows)
        assert_parity(f"{name}: hidden state {i}", ours[i], ref32[i], ref64[i])


def test_config_matches_transformers(gemma_dirs):
    """Layer types, RoPE inverse frequencies (both bases, linear scaling) and embed scale, bit for bit."""
    for name in ("a", "b", "c"):
        directory = gemma_dirs(name)
        cfg = read_config(directory)
        model = tiny_text.load_gemma(directory, double=False)
        text = model.model.language_model if cases()[name].multimodal else model.model
        assert cfg.sliding == tuple(t == "sliding_attention" for t in text.config.layer_types)
        np.testing.assert_array_equal(cfg.inv_freq(local=False), text.rotary_emb.inv_freq.numpy())
        np.testing.assert_array_equal(cfg.inv_freq(local=True), text.rotary_emb_local.inv_freq.numpy())
        assert cfg.embed_scale == text.embed_tokens.embed_scale.numpy()


def test_bf16_within_the_references_own_bf16_error(gemma_dirs):
    """bf16: our error vs the float64 truth is at most 2× transformers' own bf16 error (max over states).

    Measured on config "a" (real tokens, per state): transformers bf16 max|Δ| vs float64 0.035–0.16 on states of
    scale ~20 (bf16 keeps 8 mantissa bits), ours 0.031–0.136; the factor 2 allows a different but equally valid
    rounding order, while a precision mistake (e.g. RoPE tables or norms in bf16 math) exceeds it."""
    directory = gemma_dirs("a")
    ids, mask = left_padded_inputs(cases()["a"])
    ref64 = tiny_text.gemma_states(tiny_text.load_gemma(directory, double=True), ids, mask)
    ref_bf16 = tiny_text.gemma_states(tiny_text.load_gemma(directory, double=False).to(torch.bfloat16), ids, mask)
    ours = _ours(directory, ids, mask, "bfloat16")
    real = mask.astype(bool)[None, :, :, None]
    ref_err = np.abs(np.where(real, ref_bf16.astype(np.float64) - ref64, 0)).max(axis=(1, 2, 3))
    our_err = np.abs(np.where(real, ours - ref64, 0)).max(axis=(1, 2, 3))
    assert np.all(our_err <= 2.0 * ref_err + 1e-6), (our_err, ref_err)
