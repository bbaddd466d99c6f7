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
