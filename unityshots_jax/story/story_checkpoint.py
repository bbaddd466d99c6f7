"""A trained story model as one file: `model.safetensors` (parameters + the config that built them).

`save_story_model(out_dir, config, params, meta)` writes `out_dir/model.safetensors`: every parameter as float32
under its path in the StoryModel's pure dict ("backbone/…", "memory/…"), and header metadata
{"format": "unityshots.story-model", "version": "1", "config": the run's model_type / transformer / story /
execution sections as JSON, "meta": JSON (codec, steps, final loss, the commands that made it)}.
`load_story_model(path)` reads such a file (or a directory holding one) and returns a ready (graphdef, params)
pair; every tensor is checked against the configuration. Training workdirs are read by `train/package.py`.
"codec" names the codec bundle (`unityshots_jax.codecs`) the model was trained with — the run
config's `codec`, required there; a package without it is refused at generation (`codec_name`), never guessed.
`DEFAULT_CHECKPOINT` is the toy-world model shipped inside the package.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile, write_safetensors
from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.story.story_config import GateConfig, StoryConfig

FORMAT, VERSION, FILENAME = "unityshots.story-model", "1", "model.safetensors"
DEFAULT_CHECKPOINT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "toy_world")
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


def _tuples(section: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


def _configs(config: dict, path: str) -> tuple[LTXConfig, StoryConfig]:
    """The LTX and story configurations of a model's `config` sections (JSON lists become tuples)."""
    try:
        ltx = LTXConfig.from_checkpoint_config(dict(config["transformer"]), config.get("model_type", "audio_video"))
        story = dict(config["story"])
        gate = GateConfig(**_tuples(story.pop("gate", {})))
        return ltx, StoryConfig(**_tuples(story), gate=gate)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: config cannot build the model ({type(e).__name__}: {e})") from None


def save_story_model(out_dir: str, config: dict, params: dict, meta: dict) -> str:
    """Write `out_dir/model.safetensors` from pure-dict float parameters; returns the file's path."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = {k: v.astype(np.float32) for k, v in _flatten(jax.device_get(params)).items()}
    section = {k: config[k] for k in CONFIG_SECTIONS if k in config}
    path = os.path.join(out_dir, FILENAME)
    write_safetensors(path, tensors, {"format": FORMAT, "version": VERSION, "config": json.dumps(section, sort_keys=True),
                                      "meta": json.dumps(meta, sort_keys=True)})
    return path


def load_story_model(path: str, *, overrides: dict | None = None) -> LoadedStoryModel:
    """A story model from `model.safetensors` or a directory holding one.

    overrides: StoryConfig fields to change for generation (e.g. {"max_shots": 9, "memory_slots": "ltm",
    "gate": {"learned_rho": False}}); shapes of parameters never depend on them. Raises CheckpointError naming the
    file and the tensor on any mismatch.
    """
    path = os.path.abspath(path)
    file_path = os.path.join(path, FILENAME) if os.path.isdir(path) else path
    if not os.path.exists(file_path):
        if os.path.exists(os.path.join(path, "config.json")):
            raise CheckpointError(f"{path}: a training workdir, not a packaged model; load it with "
                                  "unityshots_jax.train.package.load_trained_model or package it (unityshots package)")
        raise CheckpointError(f"{path}: no {FILENAME} and not a training workdir (config.json + checkpoints/)")
    f = SafetensorsFile(file_path)
    if f.metadata.get("format") != FORMAT or f.metadata.get("version") != VERSION:
        raise CheckpointError(f"{file_path}: not a {FORMAT} v{VERSION} file (metadata format {f.metadata.get('format')!r})")
    try:
        config, meta = json.loads(f.metadata["config"]), json.loads(f.metadata.get("meta", "{}"))
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file_path}: unreadable config metadata ({e})") from None
    return build_story_model(config, {k: f.read(k) for k in f.keys()}, meta, path, overrides=overrides)


def build_story_model(config: dict, params: dict, meta: dict, path: str, *, overrides: dict | None = None) -> LoadedStoryModel:
    """A `LoadedStoryModel` from config sections and parameters (a pure dict, or flat "a/b/c"-named tensors), each
    tensor checked against the configuration; `path` names the source in errors. See `load_story_model`."""
    from unityshots_jax.story.story_model import abstract_story_model

    flat = _flatten(params)
    if overrides:
        story = {**config["story"], **{k: v for k, v in overrides.items() if k != "gate"}}
        if "gate" in overrides:
            story["gate"] = {**story.get("gate", {}), **overrides["gate"]}
        config = {**config, "story": story}
    ltx, story = _configs(config, path)
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
