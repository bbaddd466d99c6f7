"""Load the Gemma-3 text tower from a Hugging Face directory, strictly and one tensor at a time.

The directory holds `config.json` and either `model.safetensors` or shards listed in `model.safetensors.index.json`.
Text-tower tensors are found under whichever prefix the checkpoint uses:
  `language_model.model.`  (Gemma3ForConditionalGeneration saved by transformers < 4.52, e.g. the LTX Gemma)
  `model.language_model.`  (Gemma3ForConditionalGeneration, transformers >= 4.52)
  `model.`                 (Gemma3ForCausalLM)
  ``                       (Gemma3TextModel)
Every tensor of the tower must be present with its shape; vision-tower, projector and lm_head tensors are
ignored. `.bin` (pickle) checkpoints are refused, never unpickled.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from unityshots_jax import sharding
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
from unityshots_jax.text.gemma3.config import Gemma3TextConfig, GemmaConfigError, read_config
from unityshots_jax.text.gemma3.model import Gemma3TextTower, abstract_tower

PREFIXES = ("language_model.model.", "model.language_model.", "model.", "")
_TOWER_PARTS = ("embed_tokens.", "layers.", "norm.")
_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


class GemmaCheckpointError(CheckpointError):
    """A Gemma-3 weights directory that cannot be loaded; the message names the file and tensor."""


def weight_files(directory: str) -> dict[str, str]:
    """{tensor name: shard path} of the directory's safetensors weights (single file or index + shards)."""
    single = os.path.join(directory, "model.safetensors")
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.isfile(index):
        try:
            with open(index) as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            raise GemmaCheckpointError(f"{index}: unreadable index ({e!r})") from None
        out = {}
        for name, shard in weight_map.items():
            path = os.path.join(directory, shard)
            if not os.path.isfile(path):
                raise GemmaCheckpointError(f"{path}: shard listed in {index} (for tensor {name}) is missing")
            out[name] = path
        return out
    if os.path.isfile(single):
        return {name: single for name in SafetensorsFile(single).keys()}
    bins = sorted(n for n in os.listdir(directory) if n.endswith(".bin") or n.endswith(".pt"))
    if bins:
        raise GemmaCheckpointError(
            f"{os.path.join(directory, bins[0])}: PyTorch pickle checkpoints are never loaded; download or save the "
            "model as safetensors (model.safetensors or model.safetensors.index.json with shards)"
        )
    raise GemmaCheckpointError(f"{directory}: no model.safetensors or model.safetensors.index.json")


def expected_tensors(cfg: Gemma3TextConfig) -> dict[tuple[str, ...], tuple[str, bool, tuple[int, ...]]]:
    """{our state path: (HF key without prefix and with `{i}` for the layer, transpose, HF shape)}."""
    state = nnx.state(abstract_tower(cfg), nnx.Param)
    out = {}
    for path, leaf in nnx.to_flat_state(state):
        path = tuple(str(p) for p in path)
        shape = tuple(leaf.get_value().shape if hasattr(leaf, "get_value") else leaf.value.shape)
        stacked = path[0] == "layers"
        parts = list(path[1:] if stacked else path)
        transpose = parts[-1] == "kernel"
        if transpose:
            parts = parts[:-1]
            shape = shape[:-2] + shape[-2:][::-1]
        key = ".".join((["layers", "{i}"] if stacked else []) + parts + ["weight"])
        out[path] = (key, transpose, shape[1:] if stacked else shape)
    return out


def _find_prefix(names: set[str], where: str) -> str:
    for prefix in PREFIXES:
        if prefix + "embed_tokens.weight" in names:
            return prefix
    raise GemmaCheckpointError(
        f"{where}: no Gemma-3 text-tower tensors (looked for embed_tokens.weight under prefixes "
        f"{', '.join(repr(p) for p in PREFIXES)})"
    )


class _Shards:
    """Opened shard files, each opened once."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self._open: dict[str, SafetensorsFile] = {}

    def file(self, name: str) -> SafetensorsFile:
        path = self.files[name]
        if path not in self._open:
            self._open[path] = SafetensorsFile(path)
        return self._open[path]

    def check(self, name: str, shape: tuple[int, ...]) -> None:
        f = self.file(name)
        if name not in f.keys():
            raise GemmaCheckpointError(f"{f.path}: tensor {name} (listed in the index) is not in the shard")
        got = tuple(f.info(name)[1])
        if got != tuple(shape):
            raise GemmaCheckpointError(f"{f.path}: tensor {name} has shape {list(got)}, expected {list(shape)}")


def _checked_plan(directory: str) -> tuple[Gemma3TextConfig, str, _Shards, dict]:
    """(config, key prefix, shards, plan): every tower tensor present with its shape, nothing unexpected."""
    cfg = read_config(directory)
    files = weight_files(directory)
    prefix = _find_prefix(set(files), directory)
    shards = _Shards(files)
    plan = expected_tensors(cfg)
    wanted = set()
    for key, _, shape in plan.values():
        for i in range(cfg.num_layers) if "{i}" in key else [None]:
            name = prefix + key.format(i=i)
            if name not in files:
                raise GemmaCheckpointError(f"{directory}: missing tensor {name}")
            shards.check(name, shape)
            wanted.add(name)
    tower = [n for n in files if n.startswith(prefix) and n[len(prefix):].startswith(_TOWER_PARTS)]
    extra = sorted(set(tower) - wanted)
    if extra:
        raise GemmaCheckpointError(f"{files[extra[0]]}: unexpected tensor {extra[0]} for a {cfg.num_layers}-layer config")
    return cfg, prefix, shards, plan


def place(var: nnx.Variable, array: np.ndarray, mesh: Mesh | None, rules: sharding.Rules | None) -> jax.Array:
    """`array` on the device, or sharded over `mesh` by the variable's logical axes under `rules` (the run's
    logical → mesh pairs, `configs/sharding_rules.py`)."""
    if mesh is None:
        return jnp.asarray(array)
    if rules is None:
        raise ValueError("text encoder: placing parameters on a mesh needs the sharding rules (rules=...)")
    names = var.get_metadata().get("out_sharding") or (None,) * array.ndim
    return jax.device_put(array, NamedSharding(mesh, sharding.logical_to_spec(tuple(names), rules)))


def load_tower(directory: str, dtype: str = "float32", mesh: Mesh | None = None,
               rules: sharding.Rules | None = None) -> Gemma3TextTower:
    """The tower of the Hugging Face directory, parameters in `dtype` ("float32" or "bfloat16").

    Every tensor is checked before any is read; then one parameter at a time is read (a stacked one layer by
    layer), converted and placed — on `mesh`, by its logical axes under `rules`, when given — so the host holds one parameter.
    """
    if dtype not in _DTYPES:
        raise GemmaConfigError(f"dtype {dtype!r}: expected one of {sorted(_DTYPES)}")
    cfg, prefix, shards, plan = _checked_plan(directory)
    np_dtype = _DTYPES[dtype]
    tower = abstract_tower(cfg)
    state = nnx.state(tower, nnx.Param)
    for path, leaf in nnx.to_flat_state(state):
        key, transpose, shape = plan[tuple(str(p) for p in path)]
        if "{i}" in key:
            arr = np.empty((cfg.num_layers,) + (shape[::-1] if transpose else shape), np_dtype)
            for i in range(cfg.num_layers):
                t = shards.file(prefix + key.format(i=i)).read(prefix + key.format(i=i))
                arr[i] = (t.T if transpose else t).astype(np_dtype)
        else:
            t = shards.file(prefix + key).read(prefix + key)
            arr = np.ascontiguousarray((t.T if transpose else t).astype(np_dtype))
        leaf.set_value(place(leaf, arr, mesh, rules))
        del arr
    nnx.update(tower, state)
    return tower
