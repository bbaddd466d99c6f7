"""The training loop: data, sharded step, orbax checkpoints with automatic resume, metrics, clean preemption.

`train(config, workdir)`: resumes from the newest checkpoint in `workdir/checkpoints` (parameters, optimizer
state, step, RNG and every host's data-iterator position), saves asynchronously every `checkpoint_every` steps
keeping the last `keep_checkpoints`, writes `workdir/metrics.jsonl` (one JSON object per step) and TensorBoard
scalars, and on SIGTERM saves and exits cleanly. A run killed outright resumes from its last checkpoint and
continues the same loss curve (the metrics file is cut back to that step).
"""

from __future__ import annotations

import json
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from tqdm import tqdm

from unityshots_jax.sharding import build_mesh, use_mesh
from unityshots_jax.story.story_model import abstract_story_model, build_story_model
from unityshots_jax.train.lora import init_lora
from unityshots_jax.train.shots_forcing import TrainBatch, to_device
from unityshots_jax.train.train_config import RunConfig, TrainConfigError, run_config
from unityshots_jax.train.train_step import (
    batch_sharding,
    init_train_state,
    make_train_step,
    param_logical_axes,
    state_shardings,
)


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


def initial_params(run: RunConfig) -> dict:
    """Float32 pure-dict StoryModel parameters: random, or the backbone from a converted LTX checkpoint."""
    # initialised inside one jit: eager NNX init dispatches every initialiser op by op (slow on CPU)
    params = jax.jit(lambda: nnx.to_pure_dict(nnx.state(build_story_model(run.ltx, run.story, nnx.Rngs(run.seed)), nnx.Param)))()
    if run.init_checkpoint:
        from unityshots_jax.checkpoint.ltx_convert import load_params

        cfg, tree = load_params(run.init_checkpoint)
        if cfg != run.ltx:
            raise TrainConfigError(f"config.init.ltx_checkpoint: {run.init_checkpoint} holds a different transformer than config.transformer")
        params["backbone"] = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)
    if run.step.lora_rank > 0:
        params["lora"] = init_lora(params["backbone"], jax.random.key(run.seed + 1), run.step.lora_rank)
    return params


def _loader(run: RunConfig):
    from unityshots_jax.data import RandomStorySource, make_story_loader, open_story_source

    dims = dict(video_context_dim=run.ltx.video.context_dim, audio_context_dim=run.ltx.audio.context_dim)
    if run.data_source == "random":
        source = RandomStorySource(run.story, run.data_records, run.data_seed, **dims)
    elif run.data_source == "toy_world":
        from unityshots_jax.toy_world.toy_records import ToyWorldSource

        source = ToyWorldSource(run.story, run.data_records, run.data_seed, **dims)
    else:
        source = open_story_source(run.data_source, cfg=run.story, **dims)
    if run.batch_size % jax.process_count():
        raise TrainConfigError(f"config.batch_size: {run.batch_size} does not split over {jax.process_count()} hosts")
    return make_story_loader(
        source, run.story, batch_size=run.batch_size // jax.process_count(), seed=run.data_seed,
        worker_count=run.worker_count, **dims,
    )


def _global_batch(local, shardings: TrainBatch) -> TrainBatch:
    return jax.tree.map(lambda x, s: jax.make_array_from_process_local_data(s, np.asarray(x)), local, shardings)


class _Metrics:
    """metrics.jsonl (cut back to the resumed step) and TensorBoard scalars, written by process 0 only."""

    def __init__(self, workdir: str, resume_step: int):
        self.main = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.tb = None
        if not self.main:
            return
        kept = []
        if os.path.exists(self.path):
            with open(self.path) as f:
                for line in f:
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:  # a line torn by a crash mid-append: past the resumed step
                        continue
                    if row.get("step", 0) <= resume_step:
                        kept.append(line if line.endswith("\n") else line + "\n")
        with open(self.path, "w") as f:
            f.writelines(kept)
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
        except ImportError:  # TensorBoard output is optional
            self.tb = None

    def write(self, row: dict) -> None:
        if not self.main:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for key, value in row.items():
                if key != "step":
                    self.tb.add_scalar(key, value, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
    """Refuse a workdir written for a different model (its saved config) or that is not ours."""
    os.makedirs(workdir, exist_ok=True)
    saved = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(saved):
        try:
            with open(saved) as f:
                previous = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise TrainingError(f"{saved}: unreadable ({e}); not a unityshots workdir?") from None
        for key in ("model_type", "transformer", "story"):
            if previous.get(key) != current.get(key):
                raise TrainingError(f"{workdir}: was trained with a different config.{key}; use a new --workdir")
    elif os.path.isdir(os.path.join(workdir, "checkpoints")) and os.listdir(os.path.join(workdir, "checkpoints")):
        raise TrainingError(f"{workdir}: has checkpoints but no config.json; not a unityshots workdir")
    if jax.process_index() == 0:
        with open(saved + ".tmp", "w") as f:
            json.dump(current, f, indent=1, sort_keys=True)
        os.replace(saved + ".tmp", saved)


def _finite(tree) -> bool:
    return bool(all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree)))


def train(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Run (or resume) training; returns the last step's metrics."""
    run = run_config(config)
    if run.distributed:
        # On detected clusters (SLURM, TPU pods, …) JAX finds everything itself; elsewhere give
        # config.distributed_coordinator / _num_processes / _process_id.
        kwargs = {k: v for k, v in (("coordinator_address", config.get("distributed_coordinator")),
                                    ("num_processes", config.get("distributed_num_processes")),
                                    ("process_id", config.get("distributed_process_id"))) if v not in (None, "")}
        jax.distributed.initialize(**kwargs)
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir, config)
    mesh = build_mesh(run.mesh)
    abstract = abstract_story_model(run.ltx, run.story)
    graphdef = nnx.graphdef(abstract)
    logical = param_logical_axes(abstract)
    state_shape = jax.eval_shape(lambda: init_train_state(initial_params(run), jax.random.key(run.seed), run.step))
    rules = run.sharding_rules
    state_sh = state_shardings(state_shape, logical, mesh, rules, run.step.optimizer)
    loader = _loader(run)
    iterator = iter(loader)
    batch_shape = jax.eval_shape(to_device, next(iter(loader)))
    batch_sh = batch_sharding(mesh, batch_shape, rules)
    step_fn = make_train_step(graphdef, run.step, mesh, state_sh, batch_sh, rules)

    from unityshots_jax.data import IteratorRestore, IteratorSave

    options = ocp.CheckpointManagerOptions(max_to_keep=run.keep_checkpoints, enable_async_checkpointing=True)
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), options=options, item_names=("state", "data"))
    latest = manager.latest_step()
    if latest is not None:
        target = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), state_shape, state_sh)
        try:
            restored = manager.restore(latest, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), data=IteratorRestore(iterator)))
        except Exception as e:  # orbax raises many types; say which checkpoint and why
            raise TrainingError(f"{workdir}/checkpoints/{latest}: cannot restore ({type(e).__name__}: {e})") from None
        state = restored.state
    else:
        state = jax.device_put(init_train_state(initial_params(run), jax.random.key(run.seed), run.step), state_sh)
    start = int(state.step)
    metrics_out = _Metrics(workdir, start)
    # Compile before the loop, then meet the other hosts: cross-host collectives time out (gloo: 30 s) if one host
    # reaches its first step while another is still compiling.
    first = _global_batch(next(iterator), batch_sh)
    with use_mesh(mesh, rules):
        compiled_step = step_fn.jitted.lower(state, first).compile()
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("unityshots-train-compiled")

    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))
    last: dict = {}
    try:
        bar = tqdm(range(start, run.steps), initial=start, total=run.steps, desc="train", disable=not progress or jax.process_index() != 0)
        for _ in bar:
            batch, first = (first, None) if first is not None else (_global_batch(next(iterator), batch_sh), None)
            t0 = time.perf_counter()
            state, metrics = compiled_step(state, batch)
            metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            elapsed = time.perf_counter() - t0
            step = int(state.step)
            skipped = int(state.skipped)
            last = {"step": step, **metrics, "step_time_s": elapsed, "skipped": skipped}
            metrics_out.write(last)
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", skipped=skipped)
            if skipped > run.max_nonfinite:
                raise TrainingError(
                    f"{skipped} steps had a non-finite loss or gradient (limit config.max_nonfinite={run.max_nonfinite}); "
                    "lower the learning rate or check the data. The last checkpoint is untouched."
                )
            due = step % run.checkpoint_every == 0 or step == run.steps or stop["signal"] is not None
            if due and _finite(state.trainable):
                manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=IteratorSave(iterator)))
            if stop["signal"] is not None:
                break
    finally:
        manager.wait_until_finished()
        manager.close()
        metrics_out.close()
        signal.signal(signal.SIGTERM, previous)
    return last
