"""FeatureExtractorV2 + the video/audio connectors vs ltx-core 1.0.0's EmbeddingsProcessor (built directly, recipe
§14), loaded through our loader from the official checkpoint layout and from a converted directory.

Config "x" (fake Gemma D 24, 5 states, the tiny 2.3 transformer's connectors) was the development case; "y"
(interleaved RoPE, float32 frequency grid, 3 connector layers, 4 heads, 384 tokens) and "z" (no gate, head dim 20
and 4, 8 states, 128 tokens, a row with a single valid token) were not tuned on.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from helpers.checkpoints import rewrite
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.reference import tiny_text
from unityshots_jax.reference.tiny_configs import tiny_transformer_config
from unityshots_jax.text.embeddings import TextWeightsError, load_text_embeddings

torch.set_num_threads(1)


@dataclasses.dataclass(frozen=True)
class Case:
    dim: int
    states: int
    tokens: int
    transformer: dict
    pads: tuple[int, ...]


def _cases() -> dict[str, Case]:
    y = tiny_transformer_config(heads=4, head_dim=8, audio_heads=4, audio_head_dim=6, rope_type="interleaved",
                                frequencies_precision="float32")
    y["connector_num_layers"] = 3
    z = tiny_transformer_config(head_dim=20, audio_head_dim=4, apply_gated_attention=False)
    return {
        "x": Case(24, 5, 256, tiny_transformer_config(), (200, 17)),
        "y": Case(20, 4, 384, y, (0, 383, 100)),
        "z": Case(16, 8, 128, z, (127, 5)),
    }


def _setup(name: str, tmp_path) -> tuple[Case, torch.nn.Module, str, np.ndarray, np.ndarray]:
    case = _cases()[name]
    proc = tiny_text.build_processor(case.transformer, case.dim, case.states, seed=len(name) + ord(name))
    path = str(tmp_path / f"{name}.safetensors")
    tiny_text.write_text_checkpoint(path, case.transformer, proc)
    rng = np.random.default_rng(ord(name))
    states = (3 * rng.standard_normal((case.states, len(case.pads), case.tokens, case.dim))).astype(np.float32)
    mask = np.ones((len(case.pads), case.tokens), np.int64)
    for row, pads in enumerate(case.pads):
        mask[row, :pads] = 0
    return case, proc, path, states, mask


@pytest.mark.parametrize("name", ["x", "y", "z"])
def test_features_and_contexts_match_ltx_core(tmp_path, name):
    case, proc, path, states, mask = _setup(name, tmp_path)
    ours = load_text_embeddings(path, case.dim, case.states)
    refs = {}
    for label, dtype in (("32", torch.float32), ("64", torch.float64)):
        proc = proc.to(dtype)
        hs = [torch.from_numpy(s).to(dtype) for s in states]
        with torch.no_grad():
            feats = proc.feature_extractor(hs, torch.from_numpy(mask))
        refs[label] = [f.numpy() for f in feats] + list(tiny_text.process(proc, hs, torch.from_numpy(mask)))
    our_feats = ours.feature_extractor(jnp.asarray(states), jnp.asarray(mask))
    our_ctx = ours(jnp.asarray(states), jnp.asarray(mask))
    for i, label in enumerate(("video features", "audio features")):
        assert_parity(f"{name}: {label}", np.asarray(our_feats[i]), refs["32"][i], refs["64"][i])
    for i, label in enumerate(("video context", "audio context")):
        assert_parity(f"{name}: {label}", np.asarray(our_ctx[i]), refs["32"][2 + i], refs["64"][2 + i])
    np.testing.assert_array_equal(refs["32"][4], np.ones_like(mask))  # the mask ltx-core returns: all ones


def test_converted_directory_gives_the_same_processor(tmp_path):
    """A full tiny official checkpoint (transformer + text tensors) converted by `convert` keeps the text tensors
    in extras.safetensors; loading from there equals loading from the file."""
    from unityshots_jax.checkpoint.ltx_convert import convert
    from unityshots_jax.reference.ltx_reference import build_random_reference, save_official_checkpoint

    case, proc, text_path, states, mask = _setup("x", tmp_path)
    model_only = str(tmp_path / "transformer.safetensors")
    save_official_checkpoint(build_random_reference(case.transformer, 0), case.transformer, model_only)
    full = rewrite(model_only, str(tmp_path / "full.safetensors"), add=tiny_text.processor_file_tensors(proc))
    convert(full, str(tmp_path / "converted"), progress=False)
    a = load_text_embeddings(full, case.dim, case.states)(jnp.asarray(states), jnp.asarray(mask))
    b = load_text_embeddings(str(tmp_path / "converted"), case.dim, case.states)(jnp.asarray(states), jnp.asarray(mask))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_bad_text_weights(tmp_path):
    case, proc, path, _, _ = _setup("x", tmp_path)
    key = "model.diffusion_model.audio_embeddings_connector.transformer_1d_blocks.1.attn1.to_gate_logits.bias"
    with pytest.raises(TextWeightsError, match=f"missing tensor {key}"):
        load_text_embeddings(rewrite(path, str(tmp_path / "a.safetensors"), drop=(key,)), case.dim, case.states)
    with pytest.raises(TextWeightsError, match=r"aggregate_embed\.weight has shape \[\d+, 120\], expected "
                                               r"\[\d+, 144\] \(a Gemma of width 24 with 6 hidden states"):
        load_text_embeddings(path, case.dim, 6)
    extra = "model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.2.ff.net.2.bias"
    with pytest.raises(TextWeightsError, match=f"unexpected tensor {extra}"):
        load_text_embeddings(rewrite(path, str(tmp_path / "b.safetensors"), add={extra: np.zeros(32, np.float32)}),
                             case.dim, case.states)
    old = dict(case.transformer)
    for k in ("caption_proj_before_connector", "caption_projection_first_linear", "caption_proj_input_norm",
              "caption_projection_second_linear"):
        old.pop(k)
    v1 = str(tmp_path / "v1.safetensors")
    tiny_text.write_text_checkpoint(v1, old, proc)
    with pytest.raises(TextWeightsError, match="no 'caption_proj_before_connector'.*FeatureExtractorV1"):
        load_text_embeddings(v1, case.dim, case.states)
    with pytest.raises(TextWeightsError, match="missing; expected a directory written by 'unityshots convert'"):
        os.makedirs(tmp_path / "empty")
        load_text_embeddings(str(tmp_path / "empty"), case.dim, case.states)
