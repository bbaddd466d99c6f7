"""The training loop: data, sharded step, orbax checkpoints with automatic resume, metrics, clean preemption.

`train(config, workdir)`: resumes from the newest checkpoint in `workdir/checkpoints` (parameters, optimizer
state, step, RNG and every host's data-iterator position), saves asynchronously every `checkpoint_every` steps
keeping the last `keep_checkpoints`, writes `workdir/metrics.jsonl` (one JSON object per step, fetched from the
device every `log_every` steps, so the loop does not wait for the host each step) and TensorBoard scalars, and on SIGTERM saves and exits cleanly. A run killed outright resumes from its last checkpoint and
continues the same loss curve (the metrics file is cut back to that step).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh
from tqdm import tqdm

from unityshots_jax.sharding import build_mesh, use_mesh
from unityshots_jax.story.story_model import abstract_story_model, build_story_model
from unityshots_jax.train.distributed import barrier, initialize_args
from unityshots_jax.train.lora import init_lora
from unityshots_jax.train.shots_forcing import TrainBatch, to_device
from unityshots_jax.train.train_config import RunConfig, TrainConfigError, run_config
from unityshots_jax.train.train_step import (
    TrainState,
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
        source = open_story_source(run.data_source, cfg=run.story, codec=run.codec, **dims)
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


class _PendingMetrics:
    """Per-step metrics kept on device and fetched to the host every `log_every` steps (one transfer, no host sync
    per step); each fetch writes one row per step to metrics.jsonl (step time: the window's mean)."""

    def __init__(self, out: _Metrics, run: RunConfig):
        self.out, self.run = out, run
        self.rows: list[tuple[int, dict, jax.Array]] = []
        self.since = time.perf_counter()

    def add(self, step: int, state, metrics: dict) -> None:
        # a copy: the next step donates (and so deletes) the state's own buffers
        self.rows.append((step, metrics, jnp.copy(state.skipped)))

    def flush(self, bar) -> dict:
        """Write the pending rows; returns the last one ({} if none). Raises TrainingError past max_nonfinite."""
        if not self.rows:
            return {}
        fetched = jax.device_get(self.rows)
        step_time = (time.perf_counter() - self.since) / len(fetched)
        self.rows, self.since = [], time.perf_counter()
        for step, metrics, skipped in fetched:
            last = {"step": int(step), **{k: float(v) for k, v in metrics.items()}, "step_time_s": step_time,
                    "skipped": int(skipped)}
            self.out.write(last)
        bar.set_postfix(loss=f"{last['loss']:.4f}", skipped=last["skipped"])
        if last["skipped"] > self.run.max_nonfinite:
            raise TrainingError(
                f"{last['skipped']} steps had a non-finite loss or gradient (limit config.max_nonfinite="
                f"{self.run.max_nonfinite}); lower the learning rate or check the data. The last checkpoint is untouched."
            )
        return last


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What the loop needs, built once: mesh and rules, shardings, the data iterator and the jitted step."""

    mesh: Mesh
    rules: tuple
    state_shape: TrainState
    state_sh: TrainState
    batch_sh: TrainBatch
    iterator: object
    step_fn: Callable


def _start_distributed(config: ml_collections.ConfigDict) -> None:
    """`jax.distributed.initialize`: on detected clusters (Cloud TPU VMs, SLURM, …) JAX finds everything itself;
    elsewhere config.distributed_coordinator / _num_processes / _process_id or JAX_COORDINATOR_ADDRESS /
    JAX_NUM_PROCESSES / JAX_PROCESS_ID give them (train/distributed.py, docs/launch.md)."""
    jax.distributed.initialize(**initialize_args(config))


def _setup(run: RunConfig) -> _Setup:
    mesh = build_mesh(run.mesh)
    abstract = abstract_story_model(run.ltx, run.story)
    state_shape = jax.eval_shape(lambda: init_train_state(initial_params(run), jax.random.key(run.seed), run.step))
    rules = run.sharding_rules
    state_sh = state_shardings(state_shape, param_logical_axes(abstract), mesh, rules, run.step.optimizer)
    loader = _loader(run)
    batch_sh = batch_sharding(mesh, jax.eval_shape(to_device, next(iter(loader))), rules)
    step_fn = make_train_step(nnx.graphdef(abstract), run.step, mesh, state_sh, batch_sh, rules)
    return _Setup(mesh, rules, state_shape, state_sh, batch_sh, iter(loader), step_fn)


def _restore_or_init(manager: ocp.CheckpointManager, run: RunConfig, setup: _Setup, workdir: str) -> TrainState:
    """The newest checkpoint's state (and data-iterator position), or fresh initial parameters."""
    from unityshots_jax.data import IteratorRestore

    latest = manager.latest_step()
    if latest is None:
        state = init_train_state(initial_params(run), jax.random.key(run.seed), run.step)
        barrier("unityshots-train-initial-state")  # device_put compares the hosts' values: a collective (see barrier)
        return jax.device_put(state, setup.state_sh)
    target = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), setup.state_shape,
                          setup.state_sh)
    try:
        restored = manager.restore(latest, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(target), data=IteratorRestore(setup.iterator)))
    except Exception as e:  # orbax raises many types; say which checkpoint and why
        raise TrainingError(f"{workdir}/checkpoints/{latest}: cannot restore ({type(e).__name__}: {e})") from None
    return restored.state


def _compile(setup: _Setup, state: TrainState, first: TrainBatch):
    """Compile the step before the loop, then meet the other hosts: cross-host collectives time out (gloo: 30 s)
    if one host reaches its first step while another is still compiling."""
    with use_mesh(setup.mesh, setup.rules):
        compiled = setup.step_fn.jitted.lower(state, first).compile()
    barrier("unityshots-train-compiled")  # the coordination service's barrier: no collective, no 30 s gloo deadline
    return compiled


def _loop(run: RunConfig, setup: _Setup, manager, state: TrainState, metrics_out: _Metrics, progress: bool) -> dict:
    """Steps from `state.step` to `run.steps`: metrics fetched every `log_every` steps, checkpoints every
    `checkpoint_every` steps (and at the end, and on SIGTERM, after which the loop stops)."""
    from unityshots_jax.data import IteratorSave

    start = int(state.step)
    if start >= run.steps:  # a finished run resumed: nothing to compile or run
        return {}
    first = _global_batch(next(setup.iterator), setup.batch_sh)
    compiled_step = _compile(setup, state, first)
    pending, last = _PendingMetrics(metrics_out, run), {}
    stop = {"signal": None}
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.update(signal=signum))
    try:
        bar = tqdm(initial=start, total=run.steps, desc="train", disable=not progress or jax.process_index() != 0)
        for step in range(start + 1, run.steps + 1):
            batch, first = (first, None) if first is not None else (_global_batch(next(setup.iterator), setup.batch_sh), None)
            state, metrics = compiled_step(state, batch)
            pending.add(step, state, metrics)
            bar.update(1)
            due = step % run.checkpoint_every == 0 or step == run.steps or stop["signal"] is not None
            if due or step % run.log_every == 0:
                last = pending.flush(bar) or last
            if due and _finite(state.trainable):
                manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                           data=IteratorSave(setup.iterator)))
            if stop["signal"] is not None:
                break
        last = pending.flush(bar) or last
        bar.close()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return last


def train(config: ml_collections.ConfigDict, workdir: str, *, progress: bool = True) -> dict:
    """Run (or resume) training; returns the last step's metrics."""
    run = run_config(config)
    if run.distributed:
        _start_distributed(config)
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir, config)
    setup = _setup(run)
    options = ocp.CheckpointManagerOptions(max_to_keep=run.keep_checkpoints, enable_async_checkpointing=True)
    manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), options=options, item_names=("state", "data"))
    metrics_out = None
    try:
        state = _restore_or_init(manager, run, setup, workdir)
        metrics_out = _Metrics(workdir, int(state.step))
        return _loop(run, setup, manager, state, metrics_out, progress)
    finally:
        manager.wait_until_finished()
        manager.close()
        if metrics_out is not None:
            metrics_out.close()
