"""Config files in configs/ build the model they describe; overrides are typed and strict."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from unityshots_jax.config_files import ConfigFileError, execution_config, load_config, model_config
from unityshots_jax.ltx.transformer import abstract_model
from unityshots_jax.reference.tiny_configs import LTX23_TRANSFORMER_CONFIG
from unityshots_jax.ltx.config import LTXConfig


def _param_count(cfg: LTXConfig) -> tuple[int, int]:
    leaves = jax.tree.leaves(nnx.state(abstract_model(cfg), nnx.Param))
    return sum(int(np.prod(x.shape)) for x in leaves), len(leaves)


def test_22b_config_has_the_real_parameter_count():
    # ltx23_architecture.md §4.9: 18,988.84M parameters in 144 tensor patterns (meta-device build of ltx-core).
    count, patterns = _param_count(model_config(load_config("configs/ltx23_22b.py")))
    assert count == 18_988_838_144
    assert patterns == 144
    # The same from the full header dict the checkpoint carries.
    assert _param_count(LTXConfig.from_checkpoint_config(LTX23_TRANSFORMER_CONFIG))[0] == count


@pytest.mark.unit
def test_tiny_config_and_overrides():
    cfg = load_config("configs/tiny.py", ["--config.transformer.num_layers=3", "--config.execution.attention=dense"])
    model = model_config(cfg)
    assert model.num_layers == 3 and model.video.dim == 32 and model.audio.dim == 16
    assert execution_config(cfg).attention == "dense"
    assert dataclasses.asdict(model)["rope_type"] == "split"


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, words",
    [
        ("--config.transformer.nope=1", "unknown config key"),
        ("--config.transformer.num_layers=two", "cannot parse"),
        ("--config.transformer.num_layers=True", "expected a int"),
        ("num_layers=3", "expected --config"),
    ],
)
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigFileError, match=words):
        load_config("configs/tiny.py", [override])


@pytest.mark.unit
def test_missing_config_file():
    with pytest.raises(ConfigFileError, match="not found"):
        load_config("configs/does_not_exist.py")


# the ready 22B training configs: (file, devices, hosts) — v5p-N has N TensorCores = N/2 chips, 4 chips per host
READY_22B = [("configs/ltx23_22b_v5p64.py", 32, 8), ("configs/ltx23_22b_v5p128.py", 64, 16),
             ("configs/ltx23_22b_8xh200.py", 8, 1), ("configs/ltx23_22b_64xh100.py", 64, 8)]


@pytest.mark.parametrize("path, devices, hosts", READY_22B)
def test_ready_22b_configs_match_their_hardware(path, devices, hosts):
    from configs import sharding_rules
    from unityshots_jax.sharding import parse_rules
    from unityshots_jax.train.distributed import initialize_args
    from unityshots_jax.train.train_config import run_config

    config = load_config(path, ["--config.distributed_process_id=0"])  # the launch keys exist and are overridable
    run = run_config(config)
    m = run.mesh
    assert m["data"] * m["fsdp"] * m["context"] * m["tensor"] == devices
    assert run.batch_size == m["data"] * m["fsdp"] and run.batch_size % hosts == 0  # one story per fsdp group
    assert run.distributed == (hosts > 1) and run.step.execution.attention == "auto"
    assert run.sharding_rules == parse_rules(sharding_rules.fsdp_context())  # weights over fsdp × context
    assert initialize_args(config, {}) == {"process_id": 0}
