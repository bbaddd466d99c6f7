"""Convert an official LTX-2 / LTX-2.3 single-file checkpoint to orbax and back, tensor by tensor.

Layout of a converted directory:
  config.json          our `LTXConfig`, the checkpoint's full `metadata["config"]`, all header metadata
  params/              orbax checkpoint of the transformer parameters (stacked layers, kernels `[in, out]`,
                       the file's dtypes unchanged, so convert → export is bit-exact)
  extras.safetensors   every tensor that is not the transformer's (text connectors, VAEs, vocoder, text
                       projection), verbatim and in file order, for the component loaders (one tensor at a time);
                       config.json `components` lists which keys belong to which component
                       (`checkpoint/components.py` checked each against its own expected table at convert time)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from unityshots_jax.checkpoint.components import check_components
from unityshots_jax.checkpoint.ltx_keys import CONNECTOR_PREFIXES, TRANSFORMER_PREFIX, LeafKey, leaf_key
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, LazyTensor, SafetensorsFile, write_safetensors
from unityshots_jax.checkpoint.streamed_params import StreamedLeaf, save_streamed
from unityshots_jax.ltx.config import ConfigError, LTXConfig
from unityshots_jax.ltx.transformer import abstract_model

FORMAT = "unityshots-ltx-transformer"
FORMAT_VERSION = 1


def _flat_expected(cfg: LTXConfig) -> dict[tuple[str, ...], jax.ShapeDtypeStruct]:
    state = nnx.state(abstract_model(cfg), nnx.Param)
    flat = {}
    for path, leaf in nnx.to_flat_state(state):
        flat[tuple(str(p) for p in path)] = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
    return flat


def _file_key(leaf: LeafKey, layer: int | None = None) -> str:
    key = leaf.key.format(i=layer) if leaf.stacked else leaf.key
    return TRANSFORMER_PREFIX + key


def read_checkpoint_config(file: SafetensorsFile) -> tuple[dict, LTXConfig]:
    """The header's full config dict and the transformer's `LTXConfig` (model type from the tensors present)."""
    if "config" not in file.metadata:
        raise CheckpointError(
            f"{file.path}: no metadata['config'] in the safetensors header; an official LTX checkpoint carries its "
            "configuration there"
        )
    try:
        full = json.loads(file.metadata["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{file.path}: metadata['config'] is not valid JSON ({e})") from None
    if not isinstance(full, dict) or not isinstance(full.get("transformer"), dict):
        found = sorted(full) if isinstance(full, dict) else type(full).__name__
        raise CheckpointError(
            f"{file.path}: metadata['config'] has no 'transformer' section (found {found}); not an LTX "
            "transformer checkpoint"
        )
    keys = set(file.keys())
    has_video = TRANSFORMER_PREFIX + "patchify_proj.weight" in keys
    has_audio = TRANSFORMER_PREFIX + "audio_patchify_proj.weight" in keys
    if not has_video and not has_audio:
        raise CheckpointError(
            f"{file.path}: missing tensor {TRANSFORMER_PREFIX}patchify_proj.weight (and no audio_patchify_proj): "
            "not an LTX transformer checkpoint"
        )
    model_type = "audio_video" if has_video and has_audio else "video_only" if has_video else "audio_only"
    try:
        cfg = LTXConfig.from_checkpoint_config(full["transformer"], model_type)
    except ConfigError as e:
        raise CheckpointError(f"{file.path}: {e}") from None
    return full, cfg


def _transformer_plan(cfg: LTXConfig) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """(our leaf path → (LeafKey, abstract leaf), {file key: file shape}) of the transformer of `cfg`."""
    plan: dict[tuple[str, ...], tuple[LeafKey, jax.ShapeDtypeStruct]] = {}
    wanted: dict[str, tuple[int, ...]] = {}
    for path, sds in _flat_expected(cfg).items():
        leaf = leaf_key(path)
        plan[path] = (leaf, sds)
        shape = tuple(sds.shape[1:] if leaf.stacked else sds.shape)
        if leaf.transpose:
            shape = shape[::-1]
        for layer in range(cfg.num_layers) if leaf.stacked else [None]:
            wanted[_file_key(leaf, layer)] = shape
    return plan, wanted


def transformer_file_tensors(cfg: LTXConfig) -> dict[str, tuple[int, ...]]:
    """{file key: shape} of the transformer of `cfg` in the official single-file layout."""
    return _transformer_plan(cfg)[1]


def _check_tensors(file: SafetensorsFile, cfg: LTXConfig) -> tuple[dict, list[str]]:
    """Match the file's transformer tensors against the expected tree; returns (plan, extra keys)."""
    plan, wanted = _transformer_plan(cfg)
    present = set(file.keys())
    missing = sorted(k for k in wanted if k not in present)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CheckpointError(f"{file.path}: missing tensor {missing[0]}{more}")
    for key, shape in wanted.items():
        got = file.info(key)[1]
        if got != shape:
            raise CheckpointError(f"{file.path}: tensor {key} has shape {list(got)}, expected {list(shape)}")
        if not jnp.issubdtype(file.info(key)[0], jnp.floating):  # numpy alone does not know bf16 is a float
            raise CheckpointError(f"{file.path}: tensor {key} has dtype {file.info(key)[0]}, expected a float type")
    extras = []
    for key in sorted(present - set(wanted)):
        if key.startswith(TRANSFORMER_PREFIX) and not key.startswith(CONNECTOR_PREFIXES):
            raise CheckpointError(f"{file.path}: unexpected tensor {key} for this transformer configuration")
        extras.append(key)
    return plan, extras


def _prepare_destination(dst: str) -> str:
    """Refuse a non-empty destination; return a fresh temporary sibling to build into."""
    dst = os.path.abspath(dst)
    if os.path.exists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
        raise CheckpointError(f"{dst}: destination exists and is not empty; choose a new directory")
    parent = os.path.dirname(dst)
    if not os.path.isdir(parent):
        raise CheckpointError(f"{parent}: parent directory of the destination does not exist")
    return tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}.partial-", dir=parent)


def _check_layer_dtypes(file: SafetensorsFile, plan: dict, num_layers: int) -> None:
    """Every layer of a stacked leaf has layer 0's dtype (a stacked leaf has one dtype)."""
    for leaf, _ in plan.values():
        if not leaf.stacked:
            continue
        dtype = file.info(_file_key(leaf, 0))[0]
        for layer in range(1, num_layers):
            got = file.info(_file_key(leaf, layer))[0]
            if got != dtype:
                raise CheckpointError(f"{file.path}: tensor {_file_key(leaf, layer)} has dtype {got}, layer 0 has {dtype}")


def _streamed_leaf(file: SafetensorsFile, leaf: LeafKey, shape: tuple[int, ...], num_layers: int, bar) -> StreamedLeaf:
    """The leaf `leaf` (our layout, `shape`) read from `file` one tensor (one layer) at a time, only when written."""

    def parts():
        for layer in range(num_layers) if leaf.stacked else [None]:
            t = file.read(_file_key(leaf, layer))  # memory-mapped: unmapped once written and dropped
            yield (layer if leaf.stacked else ()), (t.T if leaf.transpose else t)
            del t
        bar.update(1)

    dtype = file.info(_file_key(leaf, 0 if leaf.stacked else None))[0]
    return StreamedLeaf(tuple(shape), dtype, parts, leaf.stacked)


def convert(src: str, dst: str, *, progress: bool = True) -> LTXConfig:
    """Convert `src` (official single-file safetensors) into the directory `dst` (must not exist or be empty).

    Reads one tensor at a time through memory maps and writes it into the orbax checkpoint before reading the next
    (stacked leaves one layer per chunk, `checkpoint/streamed_params.py`), so peak RAM is bounded by one layer of one
    parameter, not by the checkpoint (docs/design.md, "Peak host RAM of `convert`"). On any error nothing is left at `dst`.
    """
    file = SafetensorsFile(src)
    full, cfg = read_checkpoint_config(file)
    plan, extras = _check_tensors(file, cfg)
    _check_layer_dtypes(file, plan, cfg.num_layers)
    extras = [k for k in file.keys() if k in set(extras)]  # file order
    components = check_components(file, full, extras)
    work = _prepare_destination(dst)
    try:
        tree: dict = {}
        with tqdm(total=len(plan), desc="convert", unit="param", disable=not progress) as bar:
            for path, (leaf, sds) in plan.items():
                node = tree
                for part in path[:-1]:
                    node = node.setdefault(part, {})
                node[path[-1]] = _streamed_leaf(file, leaf, tuple(sds.shape), cfg.num_layers, bar)
            save_streamed(os.path.join(work, "params"), tree)
        # streamed: each tensor is copied in bounded chunks (never all in memory)
        write_safetensors(os.path.join(work, "extras.safetensors"), {k: file.lazy(k) for k in extras}, {}, extras)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ltx_config": json.loads(cfg.to_json()),
            "checkpoint_config": full,
            # ordered pairs and the file's tensor order: export reproduces the file byte for byte
            "checkpoint_metadata": [[k, file.metadata[k]] for k in file.metadata_order],
            "tensor_order": file.keys(),
            "components": {c.name: list(c.keys) for c in components},
            "source": os.path.basename(src),
        }
        with open(os.path.join(work, "config.json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        dst = os.path.abspath(dst)
        if os.path.isdir(dst):
            os.rmdir(dst)
        os.replace(work, dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return cfg


def read_converted_config(path: str) -> tuple[dict, LTXConfig]:
    """(the config.json object, the LTXConfig) of a converted directory; errors name what is wrong."""
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path}: not a directory (expected a converted checkpoint from 'unityshots convert')")
    if not os.path.isfile(cfg_path) or not os.path.isdir(os.path.join(path, "params")):
        raise CheckpointError(f"{path}: not a converted checkpoint (no config.json or params/)")
    try:
        with open(cfg_path) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfg_path}: unreadable ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{cfg_path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        cfg = LTXConfig.from_json(json.dumps(meta["ltx_config"]))
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{cfg_path}: ltx_config is invalid ({e})") from None
    return meta, cfg


def load_params(path: str, *, shardings=None) -> tuple[LTXConfig, dict]:
    """Restore (config, parameter tree) from a converted directory, in the stored dtypes.

    shardings: optional pytree of `jax.sharding.Sharding` matching the tree, for a sharded restore.
    Validates every leaf's shape against the configuration.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(path)
    _, cfg = read_converted_config(path)
    expected = _flat_expected(cfg)
    with ocp.StandardCheckpointer() as ckpt:
        meta = ckpt.metadata(os.path.join(path, "params")).item_metadata
        if meta is None:
            raise CheckpointError(f"{path}: params/ is not a readable orbax checkpoint")
        stored = meta.tree
        flat_stored = {tuple(str(k.key) for k in p): m for p, m in jax.tree_util.tree_flatten_with_path(stored)[0]}
        for p, sds in expected.items():
            if p not in flat_stored:
                raise CheckpointError(f"{path}: parameter {'/'.join(p)} missing from params/")
            if tuple(flat_stored[p].shape) != tuple(sds.shape):
                raise CheckpointError(f"{path}: parameter {'/'.join(p)} has shape {flat_stored[p].shape}, expected {sds.shape}")
        extra = sorted(set(flat_stored) - set(expected))
        if extra:
            raise CheckpointError(f"{path}: unexpected parameter {'/'.join(extra[0])} in params/")
        if shardings is None:
            tree = ckpt.restore(os.path.join(path, "params"))
        else:
            target = jax.tree.map(
                lambda m, s: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=s), stored, shardings
            )
            tree = ckpt.restore(os.path.join(path, "params"), target)
    return cfg, tree


def _export_tensors(cfg: LTXConfig, tree: dict) -> dict[str, LazyTensor]:
    out: dict[str, LazyTensor] = {}
    for path in _flat_expected(cfg):
        node = tree
        for part in path:
            node = node[part]
        arr = np.asarray(node)
        leaf = leaf_key(path)
        for layer in range(cfg.num_layers) if leaf.stacked else [None]:
            t = arr[layer] if leaf.stacked else arr
            t = t.T if leaf.transpose else t
            out[_file_key(leaf, layer)] = LazyTensor(tuple(t.shape), t.dtype, lambda t=t: t)
    return out


def export(path: str, out: str, *, progress: bool = True) -> None:
    """Write the converted directory `path` back as an official single-file safetensors `out` (atomic)."""
    meta, cfg = read_converted_config(path)
    if os.path.exists(out):
        raise CheckpointError(f"{out}: output file exists; choose a new name")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise CheckpointError(f"{out}: directory does not exist")
    _, tree = load_params(path)
    tensors: dict = _export_tensors(cfg, tree)
    extras_path = os.path.join(path, "extras.safetensors")
    if os.path.exists(extras_path):
        extras = SafetensorsFile(extras_path)
        for key in extras.keys():  # streamed, one bounded chunk at a time
            tensors[key] = extras.lazy(key)
    if progress:
        print(f"export: writing {len(tensors)} tensors to {out}")
    metadata = dict(meta.get("checkpoint_metadata") or [["config", json.dumps(meta["checkpoint_config"])]])
    order = meta.get("tensor_order")
    write_safetensors(out, tensors, metadata, order if order and set(order) == set(tensors) else None)


def params_as(tree: dict, dtype: str | None) -> dict:
    """The parameter tree as jax arrays, floating leaves cast to `dtype` (None keeps the stored dtypes)."""
    import jax.numpy as jnp

    if dtype is None:
        return jax.tree.map(jnp.asarray, tree)
    return jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.dtype(dtype)), tree)
