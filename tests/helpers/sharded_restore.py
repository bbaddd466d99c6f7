"""Restore a converted directory sharded over 2 fake CPU devices and compare it with the plain restore.

Run as a script with XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu (see
test_convert_streamed.py); argument: the converted directory. Prints one JSON line.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unityshots_jax.checkpoint.ltx_convert import load_params


def _spec(shape: tuple[int, ...]) -> PartitionSpec:
    """Split the first axis of even length over "x" (the layer axis of stacked leaves), else replicate."""
    for axis, size in enumerate(shape):
        if size % 2 == 0:
            return PartitionSpec(*([None] * axis), "x")
    return PartitionSpec()


def main() -> None:
    assert jax.device_count() == 2, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("x",))
    _, plain = load_params(sys.argv[1])
    shardings = jax.tree.map(lambda a: NamedSharding(mesh, _spec(tuple(a.shape))), plain)
    _, sharded = load_params(sys.argv[1], shardings=shardings)
    flat_plain = jax.tree_util.tree_flatten_with_path(plain)[0]
    flat_sharded = dict(jax.tree_util.tree_flatten_with_path(sharded)[0])
    flat_wanted = dict(jax.tree_util.tree_flatten_with_path(shardings, is_leaf=lambda s: isinstance(s, NamedSharding))[0])
    out = {"leaves": len(flat_plain), "split": 0, "equal": 0, "placed": 0}
    for path, a in flat_plain:
        b = flat_sharded[path]
        host_a, host_b = np.asarray(a), np.asarray(b)
        out["split"] += int(flat_wanted[path].spec != PartitionSpec())
        out["equal"] += int(host_b.dtype == host_a.dtype and np.array_equal(host_b, host_a))
        out["placed"] += int(isinstance(b, jax.Array) and b.sharding.is_equivalent_to(flat_wanted[path], b.ndim))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
