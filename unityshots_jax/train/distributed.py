"""Arguments for `jax.distributed.initialize` when `config.distributed` is set (docs/launch.md).

Each of the coordinator address, process count and process id comes from, first found:
the config (`distributed_coordinator`, `distributed_num_processes`, `distributed_process_id`; "" / -1 = unset),
then the environment (`JAX_COORDINATOR_ADDRESS` — also read by JAX itself — `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`,
read here), else left to JAX's cluster auto-detection (Cloud TPU VMs, SLURM, Open MPI, Kubernetes).
"""

from __future__ import annotations

import os
from typing import Mapping

import ml_collections

from unityshots_jax.train.train_config import TrainConfigError

# jax.distributed.initialize argument → (config key, environment variable)
SOURCES = {
    "coordinator_address": ("distributed_coordinator", "JAX_COORDINATOR_ADDRESS"),
    "num_processes": ("distributed_num_processes", "JAX_NUM_PROCESSES"),
    "process_id": ("distributed_process_id", "JAX_PROCESS_ID"),
}


def initialize_args(config: ml_collections.ConfigDict, environ: Mapping[str, str] = os.environ) -> dict:
    """The keyword arguments for `jax.distributed.initialize` that the config or environment set (the rest are
    left out for JAX to detect). Raises `TrainConfigError` naming the key or variable of a bad value."""
    out: dict = {}
    for arg, (key, var) in SOURCES.items():
        value, origin = config.get(key), f"config.{key}"
        if value in (None, "", -1):
            value, origin = environ.get(var), var
        if value in (None, ""):
            continue
        if arg == "coordinator_address":
            if ":" not in str(value):
                raise TrainConfigError(f"{origin}: expected host:port, got {value!r}")
            out[arg] = str(value)
            continue
        try:
            out[arg] = int(value)
        except (TypeError, ValueError):
            raise TrainConfigError(f"{origin}: expected an integer, got {value!r}") from None
        if out[arg] < 0:
            raise TrainConfigError(f"{origin}: must be ≥ 0, got {value!r}")
    if "process_id" in out and "num_processes" in out and out["process_id"] >= out["num_processes"]:
        raise TrainConfigError(f"process id {out['process_id']} is not below the process count {out['num_processes']}")
    return out


BARRIER_TIMEOUT_S = 1800  # hosts may finish compiling the 22B step minutes apart


def barrier(name: str, timeout_s: float = BARRIER_TIMEOUT_S) -> None:
    """Wait until every process reaches `name`, through the distributed runtime's coordination service.

    `multihost_utils.sync_global_devices` is itself a cross-process computation; on CPU its gloo collectives are set
    up at first use and give up after 30 s (DEADLINE_EXCEEDED on key cpu:gloo/...), which one host still compiling
    easily exceeds. The coordination service's barrier involves no collectives. Falls back to
    `sync_global_devices` where the runtime's client is not reachable (a JAX without `global_state.client`)."""
    import jax

    if jax.process_count() == 1:
        return
    try:
        from jax._src import distributed as runtime

        client = runtime.global_state.client
    except (ImportError, AttributeError):
        client = None
    if client is None or not hasattr(client, "wait_at_barrier"):
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
        return
    client.wait_at_barrier(name, int(timeout_s * 1000))
