"""Fill an NNX module's parameters from a safetensors file, one tensor at a time, strictly.

A module's attribute paths mirror the reference's module paths, so every leaf has exactly one checkpoint key
(`key_of(path)`); conv kernels are stored PyTorch-style `[O, I, *k]` and transposed to channels-last `[*k, I, O]`.
Every expected tensor must be present with its exact shape, and every file tensor under the component's prefixes
must be used: anything else is a `CheckpointError` naming the tensor.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Iterable, TypeVar

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile

M = TypeVar("M", bound=nnx.Module)


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """An opened weights source: the safetensors `file` holding the tensors and the full checkpoint `config`."""

    path: str
    file: SafetensorsFile
    config: dict


def open_source(path: str, *, config_from_file: bool = True) -> CheckpointSource:
    """Open an official single-file checkpoint or a converted directory (`config.json` + `extras.safetensors`).

    The config is the file's `metadata["config"]` JSON (or the converted directory's `checkpoint_config`).
    config_from_file=False: a file without a config is allowed (config `{}`), for callers that bring their own.
    """
    if os.path.isdir(path):
        meta_path, extras = os.path.join(path, "config.json"), os.path.join(path, "extras.safetensors")
        for p in (meta_path, extras):
            if not os.path.isfile(p):
                raise CheckpointError(f"{path}: not a converted LTX directory (no {os.path.basename(p)})")
        with open(meta_path) as f:
            config = json.load(f).get("checkpoint_config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{meta_path}: no 'checkpoint_config' object")
        return CheckpointSource(path, SafetensorsFile(extras), config)
    file = SafetensorsFile(path)
    if "config" not in file.metadata:
        if config_from_file:
            raise CheckpointError(f"{path}: no metadata['config'] in the safetensors header")
        return CheckpointSource(path, file, {})
    try:
        config = json.loads(file.metadata["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata['config'] is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata['config'] is not a JSON object")
    return CheckpointSource(path, file, config)


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
            expect = torch_layout_shape(str(name), tuple(leaf.shape))
            if key not in available:
                raise CheckpointError(
                    f"{source.path}: {what}: tensor {key!r} is missing (expected shape {list(expect)})")
            _, shape = file.info(key)
            if tuple(shape) != expect:
                raise CheckpointError(
                    f"{source.path}: {what}: tensor {key!r} has shape {list(shape)}, the config needs {list(expect)}")
            node[name] = jnp.asarray(from_torch_layout(str(name), file.read(key)).astype(np.float32), dtype)
            used.add(key)

    fill(pure, ())
    prefixes = tuple(owned_prefixes)
    unused = sorted(k for k in available if k.startswith(prefixes) and k not in used)
    if unused:
        raise CheckpointError(
            f"{source.path}: {what}: tensor {unused[0]!r} (and {len(unused) - 1} more) is not used by the configured "
            "model; the file and its config disagree")
    nnx.replace_by_pure_dict(state, pure)
    with nnx.use_eager_sharding(False):
        return nnx.merge(graphdef, state)
