"""A trained story model as one file: `model.safetensors` (parameters + the config that built them).

`package_run(workdir, out_dir)` takes a `unityshots train` workdir's latest checkpoint (its EMA weights when the
run kept them) and writes `out_dir/model.safetensors`: every parameter as float32 under its path in the
StoryModel's pure dict ("backbone/…", "memory/…"), LoRA folded in, and header metadata
{"format": "unityshots.story-model", "version": "1", "config": the run's model_type / transformer / story /
execution sections as JSON, "meta": JSON (codec, steps, final loss, the commands that made it)}. "codec" names the
codec bundle (`unityshots_jax.codecs`) the model was trained with — the run config's `codec`, required there; a
package without it is refused at generation (`codec_name`), never guessed.
`load_story_model(path)` reads such a file (or a directory holding one, or a training workdir directly) and
returns a ready (graphdef, params) pair; every tensor is checked against the configuration.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np
from flax import nnx

from unityshots_jax.codecs.base import codec_name
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile, write_safetensors
from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.story.story_config import StoryConfig

FORMAT, VERSION, FILENAME = "unityshots.story-model", "1", "model.safetensors"
CONFIG_SECTIONS = ("model_type", "transformer", "story", "execution")


@dataclasses.dataclass(frozen=True)
class LoadedStoryModel:
    """ltx / story: the configurations; graphdef + params: `nnx.split` of the StoryModel (float32);
    config: the sections it was built from; meta: what the file says about itself; path: where it came from."""

    ltx: LTXConfig
    story: StoryConfig
    graphdef: nnx.GraphDef
    params: nnx.State
    config: dict
    meta: dict
    path: str


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = value if hasattr(value, "shape") else np.asarray(value)
    return out


def unflatten(flat: dict[str, np.ndarray]) -> dict:
    """The nested pure dict of "a/b/0/c"-named tensors (all-digit parts become int keys, as NNX's are)."""
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(int(p) if p.isdigit() else p, {})
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return tree


def _configs(config: dict) -> tuple[LTXConfig, StoryConfig]:
    from unityshots_jax.config_files import model_config
    from unityshots_jax.train.train_config import story_config

    cfg = ml_collections.ConfigDict(config)
    return model_config(cfg), story_config(cfg)


def save_story_model(out_dir: str, config: dict, params: dict, meta: dict) -> str:
    """Write `out_dir/model.safetensors` from pure-dict float parameters; returns the file's path."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.astype(np.float32) for k, v in _flatten(jax.device_get(params)).items()}
    section = {k: config[k] for k in CONFIG_SECTIONS if k in config}
    path = os.path.join(out_dir, FILENAME)
    write_safetensors(path, tensors, {"format": FORMAT, "version": VERSION, "config": json.dumps(section, sort_keys=True),
                                      "meta": json.dumps(meta, sort_keys=True)})
    return path


def package_run(workdir: str, out_dir: str, *, use_ema: bool = True, meta: dict | None = None) -> str:
    """The latest checkpoint of a training workdir → `out_dir/model.safetensors` (see the module docstring)."""
    loaded = load_story_model(workdir, use_ema=use_ema)
    return save_story_model(out_dir, loaded.config, nnx.to_pure_dict(loaded.params), {**loaded.meta, **(meta or {})})


def _read_workdir(workdir: str, use_ema: bool) -> tuple[dict, dict, dict]:
    """(config, pure-dict params, meta) of a training workdir's latest checkpoint."""
    import orbax.checkpoint as ocp

    from unityshots_jax.train.train_config import run_config
    from unityshots_jax.train.train_step import init_train_state, model_params
    from unityshots_jax.train.trainer import initial_params

    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    run = run_config(ml_collections.ConfigDict(config))
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), item_names=("state", "data"))
    step = manager.latest_step()
    if step is None:
        raise CheckpointError(f"{workdir}: no checkpoint yet (train first, or wait for the first checkpoint_every steps)")
    shape = jax.eval_shape(lambda: init_train_state(initial_params(run), jax.random.key(run.seed), run.step))
    state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(shape))).state
    manager.close()
    trainable = state.ema if (use_ema and state.ema is not None) else state.trainable
    params = model_params(trainable, state.frozen, dataclasses.replace(run.step, execution=dataclasses.replace(run.step.execution, dtype="float32")))
    meta = {"codec": codec_name(config, os.path.join(workdir, "config.json")),
            "train_steps": int(step), "weights": "ema" if trainable is state.ema else "trainable", "workdir": os.path.basename(workdir),
            "caption_dropout": float(config.get("loss", {}).get("caption_dropout", 0.0)),
            "shift_tokens": int(config.get("loss", {}).get("shift_tokens", 0))}
    return config, params, meta


def load_story_model(path: str, *, use_ema: bool = True, overrides: dict | None = None) -> LoadedStoryModel:
    """A story model from `model.safetensors`, a directory holding one, or a `unityshots train` workdir.

    overrides: StoryConfig fields to change for generation (e.g. {"max_shots": 9, "memory_slots": "ltm",
    "gate": {"learned_rho": False}}); shapes of parameters never depend on them. Raises CheckpointError naming the file and the tensor on any mismatch.
    """
    from unityshots_jax.story.story_model import abstract_story_model

    path = os.path.abspath(path)
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")) and os.path.isdir(os.path.join(path, "checkpoints")):
        config, params, meta = _read_workdir(path, use_ema)
        flat = _flatten(params)
    else:
        file_path = os.path.join(path, FILENAME) if os.path.isdir(path) else path
        if not os.path.exists(file_path):
            raise CheckpointError(f"{path}: no {FILENAME} and not a training workdir (config.json + checkpoints/)")
        f = SafetensorsFile(file_path)
        if f.metadata.get("format") != FORMAT or f.metadata.get("version") != VERSION:
            raise CheckpointError(f"{file_path}: not a {FORMAT} v{VERSION} file (metadata format {f.metadata.get('format')!r})")
        try:
            config, meta = json.loads(f.metadata["config"]), json.loads(f.metadata.get("meta", "{}"))
        except (KeyError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{file_path}: unreadable config metadata ({e})") from None
        flat = {k: f.read(k) for k in f.keys()}
    if overrides:
        story = {**config["story"], **{k: v for k, v in overrides.items() if k != "gate"}}
        if "gate" in overrides:
            story["gate"] = {**story.get("gate", {}), **overrides["gate"]}
        config = {**config, "story": story}
    ltx, story = _configs(config)
    graphdef, state = nnx.split(abstract_story_model(ltx, story))
    expected = _flatten(nnx.to_pure_dict(state))
    missing, unexpected = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
    if missing or unexpected:
        which = f"missing tensor {missing[0]}" if missing else f"unexpected tensor {unexpected[0]}"
        raise CheckpointError(f"{path}: {which} ({len(missing)} missing, {len(unexpected)} unexpected)")
    for name, want in expected.items():
        if tuple(flat[name].shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {list(flat[name].shape)}, the config needs {list(want.shape)}")
    nnx.replace_by_pure_dict(state, unflatten({k: jax.numpy.asarray(v, jax.numpy.float32) for k, v in flat.items()}))
    return LoadedStoryModel(ltx, story, graphdef, state, config, meta, path)
