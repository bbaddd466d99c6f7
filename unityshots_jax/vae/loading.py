"""Fill an NNX module's parameters from a safetensors file, one tensor at a time, strictly.

A module's attribute paths mirror the reference's module paths, so every leaf has exactly one checkpoint key
(`key_of(path)`); conv kernels are stored PyTorch-style `[O, I, *k]` and transposed to channels-last `[*k, I, O]`.
Every expected tensor must be present with its exact shape, and every file tensor under the component's prefixes
must be used: anything else is a `CheckpointError` naming the tensor.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.component_loading import CheckpointSource, check_tensor, open_source, refuse_unused

__all__ = ["CheckpointSource", "default_key", "expected_tensors", "load_module", "open_source"]

M = TypeVar("M", bound=nnx.Module)


def torch_layout_shape(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The checkpoint shape of our leaf `name` of `shape` (conv kernels `[*k, I, O]` → `[O, I, *k]`)."""
    if name == "kernel":
        return (shape[-1], shape[-2], *shape[:-2])
    return tuple(shape)


def from_torch_layout(name: str, array: np.ndarray) -> np.ndarray:
    """A checkpoint tensor in our layout (conv kernels `[O, I, *k]` → `[*k, I, O]`)."""
    if name == "kernel":
        nk = array.ndim - 2
        return np.transpose(array, (*range(2, 2 + nk), 1, 0))
    return np.asarray(array)


def default_key(path: tuple) -> str:
    """Checkpoint key (without prefix) of an attribute path: `kernel`/`scale` → `weight`, `x_of_y` → `x-of-y`."""
    parts = [str(p) for p in path]
    last = {"kernel": "weight", "scale": "weight"}.get(parts[-1], parts[-1])
    return ".".join(parts[:-1] + [last.replace("_of_", "-of-")])


def expected_tensors(build: Callable[[], nnx.Module], key_of: Callable[[tuple], str]) -> dict[str, tuple[int, ...]]:
    """{file key: checkpoint shape} of every leaf of `build()` (built abstractly: no memory, any size)."""
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(build)
    out = {}
    for path, leaf in nnx.to_flat_state(nnx.state(abstract)):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        out[key_of(tuple(path))] = torch_layout_shape(str(path[-1]), tuple(value.shape))
    return out


def load_module(
    build: Callable[[], M],
    source: CheckpointSource,
    key_of: Callable[[tuple], str],
    owned_prefixes: Iterable[str],
    *,
    dtype=jnp.float32,
    what: str = "model",
) -> M:
    """Build `build()` abstractly and fill every leaf from `source.file[key_of(path)]`, cast to `dtype`.

    owned_prefixes: file-key prefixes that belong to this component; any tensor under them that the module does
    not use is an error (a config/file mismatch), as is any missing or mis-shaped tensor.
    """
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(build)
    graphdef, state = nnx.split(abstract)
    pure = nnx.to_pure_dict(state)
    file = source.file
    available = set(file.keys())
    used: set[str] = set()

    def fill(node: dict, path: tuple) -> None:
        for name, leaf in node.items():
            here = (*path, name)
            if isinstance(leaf, dict):
                fill(leaf, here)
                continue
            key = key_of(here)
            check_tensor(source, what, key, torch_layout_shape(str(name), tuple(leaf.shape)), available)
            node[name] = jnp.asarray(from_torch_layout(str(name), file.read(key)).astype(np.float32), dtype)
            used.add(key)

    fill(pure, ())
    refuse_unused(source, what, owned_prefixes, used)
    nnx.replace_by_pure_dict(state, pure)
    with nnx.use_eager_sharding(False):
        return nnx.merge(graphdef, state)
