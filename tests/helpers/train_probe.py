"""Training runs for tests/test_training*.py, each in its own process (device count, distributed runtime and
signals are per process). Prints one JSON line per result (prefixed "PROBE ") and writes arrays as .npz.

    python train_probe.py sharded   OUT_DIR [--config.k=v ...]   # 1 device, then every mesh in MESHES (8 devices;
                                                                 # env PROBE_MESHES="0,2": only those)
    python train_probe.py single    OUT_DIR [--config.k=v ...]   # the reference step run on 1 device
    python train_probe.py multi     OUT_DIR PORT PID NPROC [...] # one process of a jax.distributed CPU run
    python train_probe.py params    OUT_DIR STEPS [--config.k=v ...]  # the trainer's own step, params per step
    python train_probe.py train     WORKDIR [--config.k=v ...]   # trainer.train (env POISON_STEPS="3,4": those
                                                                 # steps' batches get inf latents)
    python train_probe.py dtrain    WORKDIR PORT PID NPROC [...] # trainer.train with config.distributed=True

All runs use the smoke config (configs/smoke.py) plus overrides. Set JAX_COMPILATION_CACHE_DIR to share compiled
programs between runs (see tests/helpers/training_runs.py).
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import jax  # noqa: E402
import numpy as np  # noqa: E402

SMOKE = os.path.join(ROOT, "configs", "smoke.py")
MESHES = [
    {"data": 4, "fsdp": 1, "context": 1, "tensor": 2},
    {"data": 2, "fsdp": 2, "context": 2, "tensor": 1},
    {"data": 1, "fsdp": 2, "context": 2, "tensor": 2},
]
STEPS = 2


def emit(**row) -> None:
    print("PROBE " + json.dumps(row), flush=True)


def flat(tree) -> dict[str, np.ndarray]:
    """'/'-joined key paths → host numpy arrays (works for arrays spanning several processes)."""
    from jax.experimental import multihost_utils

    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        out[name] = np.asarray(jax.device_get(leaf))
    return out


def run_of(overrides):
    from unityshots_jax.config_files import load_config
    from unityshots_jax.train.train_config import run_config

    config = load_config(SMOKE, overrides)
    return config, run_config(config)


def fixed_batches(run, batch_size: int, count: int) -> list:
    """`count` global batches of host numpy arrays, the same in every process (no host sharding)."""
    import grain

    from unityshots_jax.data import RandomStorySource, make_story_loader
    from unityshots_jax.train.shots_forcing import TrainBatch

    dims = dict(video_context_dim=run.ltx.video.context_dim, audio_context_dim=run.ltx.audio.context_dim)
    source = RandomStorySource(run.story, 16, 0, **dims)
    loader = make_story_loader(source, run.story, batch_size=batch_size, seed=0,
                               shard_options=grain.sharding.NoSharding(), **dims)
    it = iter(loader)
    out = []
    for _ in range(count):
        b = next(it)
        out.append(TrainBatch(**{f: np.asarray(getattr(b, f)) for f in TrainBatch.__dataclass_fields__}))
    return out


def run_steps(run, mesh, batches, *, process_rows=None):
    """STEPS steps of the trainer's jitted step on `mesh` from the seed's initial parameters.

    process_rows: (start, stop) rows of each global batch this process feeds (multi-process); default all.
    Returns (losses, grad_norms, final trainable params as a flat dict).
    """
    from flax import nnx

    from unityshots_jax.story.story_model import abstract_story_model
    from unityshots_jax.train import trainer
    from unityshots_jax.train.distributed import barrier
    from unityshots_jax.train.train_step import (
        batch_sharding,
        init_train_state,
        make_train_step,
        param_logical_axes,
        state_shardings,
    )

    abstract = abstract_story_model(run.ltx, run.story)
    graphdef, logical = nnx.graphdef(abstract), param_logical_axes(abstract)
    params = jax.device_get(trainer.initial_params(run))
    state = init_train_state(jax.tree.map(np.asarray, params), jax.random.key(run.seed), run.step)
    state_sh = state_shardings(jax.eval_shape(lambda: state), logical, mesh, run.sharding_rules, run.step.optimizer)
    batch_sh = batch_sharding(mesh, jax.eval_shape(lambda: batches[0]), run.sharding_rules)
    step = make_train_step(graphdef, run.step, mesh, state_sh, batch_sh, run.sharding_rules)
    barrier("probe-initial-state")  # device_put compares the processes' values: a cross-process computation
    state = jax.device_put(state, state_sh)
    losses, norms = [], []
    rows = (0, None) if process_rows is None else process_rows
    globals_ = [trainer._global_batch(jax.tree.map(lambda x: x[rows[0]:rows[1]], b), batch_sh) for b in batches]
    if process_rows is not None:  # as the trainer: compile ahead of time, then meet (gloo's 30 s first-use deadline)
        from unityshots_jax.sharding import use_mesh

        with use_mesh(mesh, run.sharding_rules):
            step = step.jitted.lower(state, globals_[0]).compile()
        barrier("probe-compiled")
    for batch in globals_:
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
        norms.append(float(metrics["grad_norm"]))
    return losses, norms, flat(state.trainable)


def cmd_sharded(out: str, overrides) -> None:
    from unityshots_jax.sharding import build_mesh

    assert jax.device_count() == 8, jax.devices()
    _, run = run_of(overrides)
    batches = fixed_batches(run, run.batch_size, STEPS)
    chosen = os.environ.get("PROBE_MESHES")  # e.g. "0,2": those entries of MESHES only
    meshes = [MESHES[int(i)] for i in chosen.split(",")] if chosen else MESHES
    for i, shape in enumerate([{"data": 1}] + meshes):
        devices = jax.devices()[: int(np.prod(list(shape.values())))]
        losses, norms, params = run_steps(run, build_mesh(shape, devices), batches)
        np.savez(os.path.join(out, f"mesh{i}.npz"), **params)
        emit(mesh=shape, devices=len(devices), losses=losses, grad_norms=norms, file=f"mesh{i}.npz")


def cmd_single(out: str, overrides) -> None:
    from unityshots_jax.sharding import build_mesh

    _, run = run_of(overrides)
    batches = fixed_batches(run, run.batch_size, STEPS)
    losses, norms, params = run_steps(run, build_mesh({"data": 1}, jax.devices()[:1]), batches)
    np.savez(os.path.join(out, "single.npz"), **params)
    emit(mesh={"data": 1}, losses=losses, grad_norms=norms, file="single.npz")


def init_distributed(port: str, pid: str, nproc: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=int(nproc),
                               process_id=int(pid), initialization_timeout=60)


def cmd_multi(out: str, port: str, pid: str, nproc: str, overrides) -> None:
    init_distributed(port, pid, nproc)
    from unityshots_jax.sharding import build_mesh

    _, run = run_of(overrides)
    n, i = jax.process_count(), jax.process_index()
    per = run.batch_size // n
    batches = fixed_batches(run, run.batch_size, STEPS)
    losses, norms, params = run_steps(run, build_mesh(run.mesh), batches, process_rows=(i * per, (i + 1) * per))
    np.savez(os.path.join(out, f"process{i}.npz"), **params)
    emit(process=i, processes=n, devices=jax.device_count(), local_devices=jax.local_device_count(),
         losses=losses, grad_norms=norms, file=f"process{i}.npz")
    jax.distributed.shutdown()


def cmd_params(out: str, steps: str, overrides) -> None:
    """The step exactly as `trainer.train` builds it (same compiled program), trainable params after each step."""
    from flax import nnx

    from unityshots_jax.sharding import build_mesh
    from unityshots_jax.story.story_model import abstract_story_model
    from unityshots_jax.train import trainer
    from unityshots_jax.train.shots_forcing import to_device
    from unityshots_jax.train.train_step import (
        batch_sharding,
        init_train_state,
        make_train_step,
        param_logical_axes,
        state_shardings,
    )

    _, run = run_of(overrides)
    mesh = build_mesh(run.mesh)
    rules = run.sharding_rules
    abstract = abstract_story_model(run.ltx, run.story)
    graphdef, logical = nnx.graphdef(abstract), param_logical_axes(abstract)
    state_shape = jax.eval_shape(lambda: init_train_state(trainer.initial_params(run), jax.random.key(run.seed), run.step))
    state_sh = state_shardings(state_shape, logical, mesh, rules, run.step.optimizer)
    loader = trainer._loader(run)
    iterator = iter(loader)
    batch_sh = batch_sharding(mesh, jax.eval_shape(lambda b: to_device(b), next(iter(loader))), rules)
    step_fn = make_train_step(graphdef, run.step, mesh, state_sh, batch_sh, rules)
    params = trainer.initial_params(run)
    np.savez(os.path.join(out, "step0.npz"), **flat(params))
    state = jax.device_put(init_train_state(params, jax.random.key(run.seed), run.step), state_sh)
    losses = []
    for s in range(1, int(steps) + 1):
        state, metrics = step_fn(state, trainer._global_batch(next(iterator), batch_sh))
        losses.append(float(metrics["loss"]))
        np.savez(os.path.join(out, f"step{s}.npz"), **flat({**state.frozen, **state.trainable}))
    emit(losses=losses, trainable=sorted(state.trainable), frozen=sorted(state.frozen))


def _poison(trainer) -> None:
    """Steps listed in POISON_STEPS (1-based) get a batch whose video latents are +inf."""
    steps = {int(s) for s in os.environ.get("POISON_STEPS", "").split(",") if s.strip()}
    if not steps:
        return
    original = trainer._global_batch
    count = {"n": 0}

    def poisoned(local, shardings):
        from unityshots_jax.train.shots_forcing import to_device

        count["n"] += 1
        if count["n"] in steps:
            host = to_device(local)
            local = host.replace(video_latents=np.full(np.shape(host.video_latents), np.inf, np.float32))
        return original(local, shardings)

    trainer._global_batch = poisoned


def _report_train(workdir: str, config) -> None:
    from unityshots_jax.train import trainer

    _poison(trainer)
    try:
        last = trainer.train(config, workdir, progress=False)
    except Exception as e:  # noqa: BLE001 - the test inspects the type and message
        emit(error=type(e).__name__, message=str(e))
        sys.exit(3)
    emit(last=last, process=jax.process_index())


def cmd_train(workdir: str, overrides) -> None:
    config, _ = run_of(overrides)
    _report_train(workdir, config)


def cmd_dtrain(workdir: str, port: str, pid: str, nproc: str, overrides) -> None:
    # the launch path docs/launch.md documents for a plain machine (no cluster environment to detect): the
    # coordinator, process count and id in JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    os.environ.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=nproc, JAX_PROCESS_ID=pid)
    config, _ = run_of([*overrides, "--config.distributed=True"])
    _report_train(workdir, config)
    jax.distributed.shutdown()


def main(argv: list[str]) -> None:
    cmd, *rest = argv
    overrides = [a for a in rest if a.startswith("--config.")]
    pos = [a for a in rest if not a.startswith("--config.")]
    {"sharded": cmd_sharded, "single": cmd_single, "multi": cmd_multi, "params": cmd_params, "train": cmd_train,
     "dtrain": cmd_dtrain}[cmd](*pos, overrides)


if __name__ == "__main__":
    main(sys.argv[1:])
