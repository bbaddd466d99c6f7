"""Gemma-3 directory loading: key layouts, strictness, and one clear error per bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from flax import nnx

from helpers.checkpoints import read_all, rewrite
from helpers.text_fixtures import gemma_dirs  # noqa: F401  (fixture)
from unityshots_jax.checkpoint.safetensors_io import write_safetensors
from unityshots_jax.text.gemma3.config import GemmaConfigError
from unityshots_jax.text.gemma3.loading import GemmaCheckpointError, load_tower


def _copy(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    return dst


def _params(tower) -> dict:
    return {k: np.asarray(v.get_value()) for k, v in nnx.to_flat_state(nnx.state(tower, nnx.Param))}


def test_old_multimodal_prefix_loads_the_same_tensors(gemma_dirs, tmp_path):
    """The LTX Gemma checkpoint names tensors `language_model.model.*` (transformers < 4.52); a copy of a
    text-only checkpoint renamed that way, with vision tensors added, loads to the same parameters."""
    src = gemma_dirs("c")
    dst = _copy(src, str(tmp_path / "old"))
    tensors, _, _ = read_all(os.path.join(src, "model.safetensors"))
    renamed = {"language_model.model." + k[len("model."):]: v for k, v in tensors.items()}
    renamed["vision_tower.vision_model.post_layernorm.weight"] = np.ones(4, np.float32)
    renamed["multi_modal_projector.mm_input_projection_weight"] = np.ones((4, 16), np.float32)
    write_safetensors(os.path.join(dst, "model.safetensors"), renamed, {"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        text = json.load(f)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump({"model_type": "gemma3", "text_config": text, "vision_config": {}}, f)
    ours, ref = _params(load_tower(dst)), _params(load_tower(src))
    assert ours.keys() == ref.keys()
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key])


def test_missing_config(gemma_dirs, tmp_path):
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    os.remove(os.path.join(dst, "config.json"))
    with pytest.raises(GemmaConfigError, match=r"config\.json: missing"):
        load_tower(dst)


def test_not_a_gemma3_config(gemma_dirs, tmp_path):
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump({"model_type": "llama", "hidden_size": 32}, f)
    with pytest.raises(GemmaConfigError, match=r"config\.json: model_type is 'llama'"):
        load_tower(dst)


def test_missing_shard(gemma_dirs, tmp_path):
    dst = _copy(gemma_dirs("b"), str(tmp_path / "x"))
    with open(os.path.join(dst, "model.safetensors.index.json")) as f:
        shard = sorted(set(json.load(f)["weight_map"].values()))[-1]
    os.remove(os.path.join(dst, shard))
    with pytest.raises(GemmaCheckpointError, match=f"{shard}: shard listed in .* is missing"):
        load_tower(dst)


def test_missing_tensor_and_wrong_shape(gemma_dirs, tmp_path):
    src = os.path.join(gemma_dirs("a"), "model.safetensors")
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    name = "model.layers.1.mlp.up_proj.weight"
    rewrite(src, os.path.join(dst, "model.safetensors"), drop=(name,))
    with pytest.raises(GemmaCheckpointError, match=f"missing tensor {name}"):
        load_tower(dst)
    rewrite(src, os.path.join(dst, "model.safetensors"), replace={name: np.zeros((96, 31), np.float32)})
    with pytest.raises(GemmaCheckpointError, match=rf"tensor {name} has shape \[96, 31\], expected \[96, 32\]"):
        load_tower(dst)


def test_unexpected_layer_tensor(gemma_dirs, tmp_path):
    src = os.path.join(gemma_dirs("a"), "model.safetensors")
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    rewrite(src, os.path.join(dst, "model.safetensors"), add={"model.layers.4.input_layernorm.weight": np.zeros(32, np.float32)})
    with pytest.raises(GemmaCheckpointError, match=r"unexpected tensor model\.layers\.4\.input_layernorm\.weight"):
        load_tower(dst)


def test_pickle_checkpoints_are_refused(gemma_dirs, tmp_path):
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    os.remove(os.path.join(dst, "model.safetensors"))
    with open(os.path.join(dst, "pytorch_model.bin"), "wb") as f:
        f.write(b"\x80\x04not loaded")
    with pytest.raises(GemmaCheckpointError, match=r"pytorch_model\.bin: PyTorch pickle checkpoints are never loaded.*safetensors"):
        load_tower(dst)


def test_unsupported_config_field(gemma_dirs, tmp_path):
    dst = _copy(gemma_dirs("a"), str(tmp_path / "x"))
    path = os.path.join(dst, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 2.0}
    with open(path, "w") as f:
        json.dump(cfg, f)
    with pytest.raises(GemmaConfigError, match=r"rope_scaling\.rope_type 'yarn' is not supported"):
        load_tower(dst)


def test_ltx_gemma_12b_layout_matches_transformers():
    """ltx-core's hard-coded Gemma-3 12B config parses to the LTX facts (§7), and our expected tensor names and
    shapes are exactly the language model's state dict in transformers (built on the meta device)."""
    import torch
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from unityshots_jax.text.gemma3.config import GEMMA3_12B_LTX_TEXT, config_from_dict
    from unityshots_jax.text.gemma3.loading import expected_tensors

    raw = GEMMA3_CONFIG_FOR_LTX.to_dict()
    cfg = config_from_dict(raw)
    assert config_from_dict(GEMMA3_12B_LTX_TEXT) == dataclasses.replace(cfg, image_token_id=None)
    assert (cfg.num_states, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim) == (49, 3840, 16, 8, 256)
    assert sum(cfg.sliding) == 40 and not any(cfg.sliding[5::6])
    assert (cfg.rope_theta, cfg.rope_local_base_freq, cfg.rope_scaling_factor, cfg.sliding_window) == (1e6, 1e4, 8.0, 1024)
    assert cfg.image_token_id is None  # image token 262144 is inside the 262208-entry vocabulary
    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(Gemma3Config.from_dict(raw))
    theirs = {k: tuple(v.shape) for k, v in model.model.language_model.state_dict().items()}
    ours = {}
    for key, _, shape in expected_tensors(cfg).values():
        for i in range(cfg.num_layers) if "{i}" in key else [None]:
            ours[key.format(i=i)] = tuple(shape)
    assert ours == theirs
