"""`train/distributed.initialize_args`: what `unityshots train` passes to `jax.distributed.initialize` with
config.distributed=True (docs/launch.md): config keys first, then JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID, the rest left to JAX's cluster detection. The 2-process launch through the environment runs in
tests/test_training_multiprocess.py::test_trainer_runs_distributed_in_two_processes."""

import ml_collections
import pytest

from unityshots_jax.train.distributed import initialize_args
from unityshots_jax.train.train_config import TrainConfigError

ENV = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "8", "JAX_PROCESS_ID": "3"}


def cfg(**kw):
    return ml_collections.ConfigDict(dict(distributed=True, **kw))


def test_nothing_set_leaves_everything_to_cluster_detection():
    assert initialize_args(cfg(), {}) == {}
    # the configs' "unset" values ("" and -1) count as unset
    unset = cfg(distributed_coordinator="", distributed_num_processes=-1, distributed_process_id=-1)
    assert initialize_args(unset, {}) == {}


def test_environment_gives_all_three():
    assert initialize_args(cfg(), ENV) == dict(coordinator_address="10.0.0.1:1234", num_processes=8, process_id=3)


def test_config_wins_over_environment_per_key():
    got = initialize_args(cfg(distributed_coordinator="head:99", distributed_process_id=5), ENV)
    assert got == dict(coordinator_address="head:99", num_processes=8, process_id=5)


@pytest.mark.parametrize("env, name", [
    ({"JAX_NUM_PROCESSES": "eight"}, "JAX_NUM_PROCESSES"),
    ({"JAX_PROCESS_ID": "-2"}, "JAX_PROCESS_ID"),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1"}, "JAX_COORDINATOR_ADDRESS"),
    ({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2"}, "process id 2"),
])
def test_bad_values_are_named(env, name):
    with pytest.raises(TrainConfigError, match=name):
        initialize_args(cfg(), env)


def test_bad_config_value_names_the_key():
    with pytest.raises(TrainConfigError, match="config.distributed_num_processes"):
        initialize_args(cfg(distributed_num_processes="x"), {})
