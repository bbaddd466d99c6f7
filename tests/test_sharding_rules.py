"""Sharding rules from config (`configs/sharding_rules.py` presets, `sharding.parse_rules`) and optimizer-state
shardings derived from the parameters' through optax's param-tree mapping (no key-path matching)."""

from __future__ import annotations

import jax
import ml_collections
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec

from configs import sharding_rules
from helpers.story_fixtures import LTX, SC
from unityshots_jax.config_files import load_config
from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules
from unityshots_jax.story.story_model import abstract_story_model, build_story_model
from unityshots_jax.train.lora import init_lora
from unityshots_jax.train.optimizer import OptimizerConfig
from unityshots_jax.train.train_config import TrainConfigError, run_config
from unityshots_jax.train.train_step import StepConfig, init_train_state, param_logical_axes, state_shardings


def test_presets_parse_and_differ_only_on_embed():
    default, both = parse_rules(sharding_rules.default()), parse_rules(sharding_rules.fsdp_context())
    assert dict(default)["embed"] == "fsdp" and dict(both)["embed"] == ("context", "fsdp")
    assert {k: v for k, v in default if k != "embed"} == {k: v for k, v in both if k != "embed"}
    assert logical_to_spec(("layers", "embed", "heads"), default) == PartitionSpec(None, "fsdp", "tensor")


@pytest.mark.parametrize("bad, words", [
    ("default", "list of"), ([("embed", "fsdp", 3)], "[0]"), ([("embed", "gpu")], "mesh axes"),
    ([("embed", "fsdp"), ("embed", None)], "twice"), ([("embed", [])], "[0]"),
])  # fmt: skip
def test_parse_rules_names_the_bad_entry(bad, words):
    with pytest.raises(ValueError, match="config.sharding_rules") as e:
        parse_rules(bad)
    assert words in str(e.value)


def test_run_config_reads_the_rules_list():
    cfg = load_config("configs/smoke.py", [])
    # the configs' preset (configs/ltx23_22b_train_common.py): weights over context × fsdp
    assert run_config(cfg).sharding_rules == parse_rules(sharding_rules.fsdp_context())
    cfg.sharding_rules = sharding_rules.default()
    assert dict(run_config(cfg).sharding_rules)["embed"] == "fsdp"
    legacy = ml_collections.ConfigDict({**cfg.to_dict(), "sharding_rules": "fsdp_context"})  # a preset's name
    with pytest.raises(TrainConfigError, match="sharding_rules"):
        run_config(legacy)


@pytest.mark.parametrize("step", [StepConfig(), StepConfig(optimizer=OptimizerConfig(clip_norm=0.0, ema_decay=0.9)),
                                  StepConfig(lora_rank=2), StepConfig(optimizer=OptimizerConfig(freeze_backbone=True))])
def test_optimizer_moments_follow_their_parameters(step):
    rules, mesh = parse_rules(sharding_rules.fsdp_context()), build_mesh({"data": 1})

    def params():
        p = nnx.to_pure_dict(nnx.state(build_story_model(LTX, SC, nnx.Rngs(0)), nnx.Param))
        if step.lora_rank:
            p["lora"] = init_lora(p["backbone"], jax.random.key(1), step.lora_rank)
        return p

    shape = jax.eval_shape(lambda: init_train_state(params(), jax.random.key(0), step))
    sh = state_shardings(shape, param_logical_axes(abstract_story_model(LTX, SC)), mesh, rules, step.optimizer)
    flat_params = dict(jax.tree_util.tree_flatten_with_path(sh.trainable)[0])
    moments = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(sh.opt_state, is_leaf=lambda x: isinstance(x, optax.MaskedNode))[0]:
        if isinstance(leaf, optax.MaskedNode):
            continue
        names = [k.name for k in path if isinstance(k, jax.tree_util.GetAttrKey)]
        if names and names[-1] in ("mu", "nu"):
            key = tuple(k for k in path if isinstance(k, jax.tree_util.DictKey))[1:]  # drop inner_states' group key
            assert leaf == flat_params[key], jax.tree_util.keystr(path)
            moments += 1
        else:
            assert leaf.spec == PartitionSpec(), jax.tree_util.keystr(path)  # counts
    assert moments == 2 * len(flat_params)
    assert any(s.spec != PartitionSpec() for s in flat_params.values())
