"""Configuration from checkpoint headers and the parameter-path ↔ state-dict-key mapping (torch-free)."""

from __future__ import annotations

import dataclasses

import pytest

from unityshots_jax.checkpoint.ltx_keys import leaf_key
from unityshots_jax.ltx.config import ConfigError, LTXConfig
from unityshots_jax.reference.tiny_configs import LTX23_TRANSFORMER_CONFIG, tiny_19b_config, tiny_transformer_config

pytestmark = pytest.mark.unit  # sub-second: the fast inner loop (python -m pytest -m unit)


def test_full_22b_config():
    cfg = LTXConfig.from_checkpoint_config(LTX23_TRANSFORMER_CONFIG, "audio_video")
    assert cfg.num_layers == 48 and cfg.rope_type == "split" and cfg.rope_double_precision
    assert (cfg.video.heads, cfg.video.head_dim, cfg.video.dim, cfg.video.context_dim) == (32, 128, 4096, 4096)
    assert (cfg.audio.heads, cfg.audio.head_dim, cfg.audio.dim, cfg.audio.in_channels) == (32, 64, 2048, 128)
    assert cfg.gated_attention and cfg.cross_attention_adaln and cfg.caption_channels is None
    assert cfg.adaln_coefficient == 9 and cfg.av_ca_timestep_scale_multiplier == 1000.0
    assert LTXConfig.from_json(cfg.to_json()) == cfg


def test_19b_defaults_equal_explicit_false_keys():
    absent = LTXConfig.from_checkpoint_config(tiny_19b_config(), "audio_video")
    explicit = LTXConfig.from_checkpoint_config(tiny_19b_config(explicit_keys=True), "audio_video")
    assert absent == explicit
    assert not absent.gated_attention and not absent.cross_attention_adaln and absent.adaln_coefficient == 6
    assert absent.caption_channels == 24 and absent.video.context_dim == absent.audio.context_dim == 24
    assert absent.rope_type == "interleaved"


def test_frequency_precision_switch():
    assert LTXConfig.from_checkpoint_config(tiny_transformer_config(), "audio_video").rope_double_precision
    f32 = tiny_transformer_config(frequencies_precision="float32")
    assert not LTXConfig.from_checkpoint_config(f32, "audio_video").rope_double_precision
    no_key = dict(f32)
    del no_key["frequencies_precision"]
    assert not LTXConfig.from_checkpoint_config(no_key, "audio_video").rope_double_precision


def test_head_count_rules():
    # interleaved: different head counts are fine; split: an AV model needs equal head counts
    interleaved = tiny_transformer_config(rope_type="interleaved", heads=4, head_dim=8, audio_heads=2,
                                          audio_head_dim=12)
    cfg = LTXConfig.from_checkpoint_config(interleaved, "audio_video")
    assert (cfg.video.heads, cfg.audio.heads) == (4, 2)
    split = dict(interleaved, rope_type="split")
    with pytest.raises(ConfigError, match="equal head counts"):
        LTXConfig.from_checkpoint_config(split, "audio_video")
    # ... but a single-stream model has no A↔V attention
    assert LTXConfig.from_checkpoint_config(split, "video_only").video.heads == 4
    with pytest.raises(ConfigError, match="even head dim"):
        dataclasses.replace(cfg, rope_type="split", video=dataclasses.replace(cfg.video, head_dim=7, heads=4,
                                                                              context_dim=28))


@pytest.mark.parametrize("key,value,match", [
    ("qk_norm", "layer_norm", "qk_norm"),
    ("num_layers", "2", "num_layers"),
    ("rope_type", "rotary", "rope_type"),
    ("positional_embedding_max_pos", [20, 2048], "positional_embedding_max_pos"),
    ("audio_cross_attention_dim", 17, "audio_cross_attention_dim"),
    ("num_layers", 0, "num_layers"),
])
def test_config_errors_name_the_key(key, value, match):
    config = dict(tiny_transformer_config(), **{key: value})
    with pytest.raises(ConfigError, match=match):
        LTXConfig.from_checkpoint_config(config, "audio_video")


@pytest.mark.parametrize("path,key,stacked,transpose", [
    (("patchify_proj", "kernel"), "patchify_proj.weight", False, True),
    (("patchify_proj", "bias"), "patchify_proj.bias", False, False),
    (("adaln_single", "linear_1", "kernel"), "adaln_single.emb.timestep_embedder.linear_1.weight", False, True),
    (("adaln_single", "linear", "bias"), "adaln_single.linear.bias", False, False),
    (("prompt_adaln_single", "linear_2", "kernel"), "prompt_adaln_single.emb.timestep_embedder.linear_2.weight",
     False, True),
    (("scale_shift_table",), "scale_shift_table", False, False),
    (("caption_projection", "linear_1", "kernel"), "caption_projection.linear_1.weight", False, True),
    (("blocks", "attn1", "to_out", "kernel"), "transformer_blocks.{i}.attn1.to_out.0.weight", True, True),
    (("blocks", "attn1", "q_norm"), "transformer_blocks.{i}.attn1.q_norm.weight", True, False),
    (("blocks", "audio_ff", "proj_in", "bias"), "transformer_blocks.{i}.audio_ff.net.0.proj.bias", True, False),
    (("blocks", "ff", "proj_out", "kernel"), "transformer_blocks.{i}.ff.net.2.weight", True, True),
    (("blocks", "scale_shift_table_a2v_ca_audio"), "transformer_blocks.{i}.scale_shift_table_a2v_ca_audio", True,
     False),
    (("blocks", "audio_to_video_attn", "to_gate_logits", "kernel"),
     "transformer_blocks.{i}.audio_to_video_attn.to_gate_logits.weight", True, True),
])
def test_leaf_keys(path, key, stacked, transpose):
    leaf = leaf_key(path)
    assert (leaf.key, leaf.stacked, leaf.transpose) == (key, stacked, transpose)
