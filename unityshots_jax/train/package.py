"""From a `unityshots train` workdir to a story model: read its latest checkpoint, or package it as one file.

`package_run(workdir, out_dir)` takes the workdir's latest checkpoint (its EMA weights when the run kept them),
folds LoRA in and writes `out_dir/model.safetensors` through `story_checkpoint.save_story_model`.
`load_trained_model(path)` loads a packaged model or a workdir directly.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections
from flax import nnx

from unityshots_jax.checkpoint.safetensors_io import CheckpointError
from unityshots_jax.codecs.base import codec_name
from unityshots_jax.story.story_checkpoint import LoadedStoryModel, build_story_model, load_story_model, save_story_model
from unityshots_jax.train.train_config import run_config
from unityshots_jax.train.train_step import init_train_state, model_params
from unityshots_jax.train.trainer import initial_params


def is_workdir(path: str) -> bool:
    """A training workdir holds `config.json` and a `checkpoints/` directory."""
    return os.path.isdir(path) and os.path.exists(os.path.join(path, "config.json")) and os.path.isdir(
        os.path.join(path, "checkpoints"))


def read_workdir(workdir: str, use_ema: bool = True) -> tuple[dict, dict, dict]:
    """(config, pure-dict float32 params with LoRA folded in, meta) of a training workdir's latest checkpoint."""
    import orbax.checkpoint as ocp

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
    float32 = dataclasses.replace(run.step, execution=dataclasses.replace(run.step.execution, dtype="float32"))
    params = model_params(trainable, state.frozen, float32)
    meta = {"codec": codec_name(config, os.path.join(workdir, "config.json")),
            "train_steps": int(step), "weights": "ema" if trainable is state.ema else "trainable",
            "workdir": os.path.basename(workdir),
            "caption_dropout": float(config.get("loss", {}).get("caption_dropout", 0.0)),
            "shift_tokens": int(config.get("loss", {}).get("shift_tokens", 0))}
    return config, params, meta


def load_trained_model(path: str, *, use_ema: bool = True, overrides: dict | None = None) -> LoadedStoryModel:
    """A story model from a training workdir (its latest checkpoint) or a packaged `model.safetensors` / directory."""
    path = os.path.abspath(path)
    if is_workdir(path):
        config, params, meta = read_workdir(path, use_ema)
        return build_story_model(config, params, meta, path, overrides=overrides)
    return load_story_model(path, overrides=overrides)


def package_run(workdir: str, out_dir: str, *, use_ema: bool = True, meta: dict | None = None) -> str:
    """The latest checkpoint of a training workdir → `out_dir/model.safetensors`; returns the file's path."""
    loaded = load_trained_model(workdir, use_ema=use_ema)
    return save_story_model(out_dir, loaded.config, nnx.to_pure_dict(loaded.params), {**loaded.meta, **(meta or {})})
