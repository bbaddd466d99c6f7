"""Two processes on one machine joined by `jax.distributed` (CPU, gloo collectives, 2 devices each) run the same
training step as one process on the whole batch, each feeding its half of the global batch through the trainer's
`_global_batch` (`jax.make_array_from_process_local_data`); and `trainer.train` runs with config.distributed=True.

Every child is killed after a bounded time (a hung collective must not hang the suite).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from helpers import training_runs as tr

# each test starts 2-3 JAX processes that trace and compile their programs: about a minute each on 2 cores. They
# run in CI: multi-host training must not rot silently.

MESH = ("--config.mesh.data=-1", "--config.mesh.fsdp=2")  # 4 devices: data 2 (across processes) × fsdp 2


def run_pair(mode: str, target: str, *overrides: str, timeout: float = tr.TIMEOUT) -> list[dict]:
    """Start processes 0 and 1 of a 2-process run; both must exit 0 within `timeout` (else both are killed)."""
    port = str(tr.free_port())
    procs = [tr.start([sys.executable, tr.PROBE, mode, target, port, str(i), "2", *overrides], devices=2)
             for i in range(2)]
    results = []
    try:
        for proc in procs:
            results.append(tr.finish(proc, timeout))
    finally:
        for proc in procs:
            tr.kill(proc)
    rows = []
    for i, (code, out, err) in enumerate(results):
        assert code == 0, f"process {i} exited {code}\n{out[-2000:]}\n{err[-5000:]}"
        rows += tr.rows_of(out)
    return rows


def test_two_processes_match_one_process(tmp_path):
    rows = sorted(run_pair("multi", str(tmp_path), *tr.SMALL, *MESH), key=lambda r: r["process"])
    assert [r["process"] for r in rows] == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 4 and r["local_devices"] == 2 for r in rows)
    # 8 forced devices as in test_training's sharded step, whose 1-device reference is this same program: the
    # compilation cache is keyed by the process's device count, so this run loads that program instead of compiling
    (single,) = tr.probe("single", str(tmp_path), *tr.SMALL, devices=8, timeout=tr.TIMEOUT)
    p0, p1 = tr.load(tmp_path / "process0.npz"), tr.load(tmp_path / "process1.npz")
    # the processes agree exactly (same program, same collectives) …
    assert rows[0]["losses"] == rows[1]["losses"] and rows[0]["grad_norms"] == rows[1]["grad_norms"]
    assert all(np.array_equal(p0[k], p1[k]) for k in p0)
    # … and with one process on the whole batch
    np.testing.assert_allclose(rows[0]["losses"], single["losses"], rtol=1e-5)
    np.testing.assert_allclose(rows[0]["grad_norms"], single["grad_norms"], rtol=1e-4)
    ref = tr.load(tmp_path / "single.npz")
    tr.assert_params_close(p0, ref, "2 processes vs 1")
    checksum = lambda p: sum(float(np.abs(v).astype(np.float64).sum()) for v in p.values())  # noqa: E731
    assert checksum(p0) == pytest.approx(checksum(ref), rel=1e-6)


def test_trainer_runs_distributed_in_two_processes(tmp_path):
    workdir = str(tmp_path / "w")
    rows = run_pair("dtrain", workdir, *tr.SMALL, *MESH, "--config.steps=3", "--config.checkpoint_every=2")
    assert len(rows) == 2 and all("error" not in r for r in rows), rows
    last = {r["process"]: r["last"] for r in rows}
    assert last[0]["step"] == last[1]["step"] == 3 and last[0]["loss"] == last[1]["loss"]
    metrics = tr.metrics(workdir)  # written by process 0 only
    assert [m["step"] for m in metrics] == [1, 2, 3] and np.isfinite([m["loss"] for m in metrics]).all()
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
    # every host's data-iterator position is in the checkpoint
    data = os.path.join(workdir, "checkpoints", "3", "data")
    assert sorted(f for f in os.listdir(data) if f.startswith("process_")) == ["process_0-of-2.json", "process_1-of-2.json"]
