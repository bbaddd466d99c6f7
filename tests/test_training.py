"""Shots-Forcing training end to end on CPU: sharded step = one device, kill / SIGTERM and resume give the same loss
curve, gradients reach the new parameters (frozen backbone and LoRA stay frozen), metrics and non-finite steps,
and bad input (foreign checkpoints and workdirs, corrupt records) fails with errors that name it.

Training runs in subprocesses (device count and signals are per process) through JAX's persistent compilation
cache (tests/helpers/training_runs.py): the first run on a machine compiles each program (~1-2 min CPU each),
later runs load them in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from helpers import training_runs as tr

SMALL, RTOL, ATOL, TIMEOUT = tr.SMALL, tr.RTOL, tr.ATOL, tr.TIMEOUT
load, assert_params_close = tr.load, tr.assert_params_close
CLI_RUN = ("--config.steps=12", "--config.checkpoint_every=4")


# ------------------------------------------------------------------------------------------ 1. sharded = 1 device
# CI: meshes 0 and 2 of train_probe.MESHES (data × tensor, fsdp × context × tensor) cover every axis; mesh 1
# (data × fsdp × context) is the slow variant
@pytest.mark.parametrize("meshes", [pytest.param("0,2", id="data-tensor+fsdp-context-tensor"),
                                    pytest.param("1", id="data-fsdp-context", marks=pytest.mark.slow)])
def test_sharded_step_matches_single_device(tmp_path, meshes):
    rows = tr.probe("sharded", str(tmp_path), *SMALL, devices=8, timeout=TIMEOUT, PROBE_MESHES=meshes)
    ref, *sharded = rows
    assert ref["mesh"] == {"data": 1} and ref["devices"] == 1
    assert len(sharded) == len(meshes.split(",")) and all(r["devices"] == 8 for r in sharded)
    want = load(tmp_path / ref["file"])
    for row in sharded:
        np.testing.assert_allclose(row["losses"], ref["losses"], rtol=RTOL, err_msg=str(row["mesh"]))
        np.testing.assert_allclose(row["grad_norms"], ref["grad_norms"], rtol=1e-4, err_msg=str(row["mesh"]))
        assert_params_close(load(tmp_path / row["file"]), want, str(row["mesh"]))
    assert all(np.isfinite(ref["losses"])) and ref["losses"][0] != ref["losses"][1]


# ------------------------------------------------------------------------------- 3. kill / SIGTERM and resume (CLI)
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted `unityshots train` run of the smoke config: (workdir, metrics rows)."""
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    code, out, err = tr.run(tr.cli(workdir, *CLI_RUN), timeout=TIMEOUT)
    assert code == 0, err[-4000:]
    return workdir, tr.metrics(workdir)


def losses(rows: list[dict]) -> list[float]:
    return [r["loss"] for r in rows]


def checkpoints(workdir: str) -> list[int]:
    root = os.path.join(workdir, "checkpoints")
    return sorted(int(d) for d in os.listdir(root) if d.isdigit()) if os.path.isdir(root) else []


def test_metrics_file_has_one_row_per_step(reference_run):
    workdir, rows = reference_run
    assert [r["step"] for r in rows] == list(range(1, 13))
    for r in rows:
        for key in ("step", "loss", "lr", "grad_norm", "step_time_s", "skipped"):
            assert key in r, (key, r)
        assert np.isfinite([r["loss"], r["lr"], r["grad_norm"], r["step_time_s"]]).all(), r
        assert r["step_time_s"] >= 0 and r["skipped"] == 0 and r["finite"] == 1.0
    assert rows[0]["lr"] == 0.0 and rows[2]["lr"] > rows[1]["lr"] > 0  # linear warm-up over 2 steps, lr at step - 1
    assert checkpoints(workdir) == [4, 8, 12]
    assert os.path.isdir(os.path.join(workdir, "tensorboard"))


def test_log_every_fetches_metrics_in_windows_and_writes_the_same_rows(reference_run, tmp_path):
    """log_every=5 (checkpoints every 4): metrics leave the device at steps 4, 5, 8, 10, 12 only, and the file
    holds the same rows, the same losses, as the log_every=1 run."""
    workdir = str(tmp_path / "w")
    code, _, err = tr.run(tr.cli(workdir, *CLI_RUN, "--config.log_every=5"), timeout=TIMEOUT)
    assert code == 0, err[-4000:]
    got = tr.metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, 13))
    assert losses(got) == losses(reference_run[1])
    assert checkpoints(workdir) == [4, 8, 12]


@pytest.mark.unit
def test_pending_metrics_stay_on_device_until_flushed(monkeypatch):
    import jax
    import jax.numpy as jnp

    from unityshots_jax.train import trainer

    written, fetches = [], []
    out = type("Out", (), {"write": lambda self, row: written.append(row)})()
    run = type("Run", (), {"max_nonfinite": 0})()
    bar = type("Bar", (), {"set_postfix": lambda self, **kw: None})()
    pending = trainer._PendingMetrics(out, run)
    state = type("State", (), {"skipped": jnp.zeros((), jnp.int32)})()
    for step in (1, 2, 3):
        pending.add(step, state, {"loss": jnp.float32(step / 10)})
    assert written == []
    real_get = jax.device_get
    monkeypatch.setattr(trainer.jax, "device_get", lambda x: fetches.append(1) or real_get(x))
    last = pending.flush(bar)
    assert fetches == [1] and [r["step"] for r in written] == [1, 2, 3] and last == written[-1]
    assert last["loss"] == pytest.approx(0.3) and last["skipped"] == 0 and pending.flush(bar) == {}
    pending.add(4, type("State", (), {"skipped": jnp.ones((), jnp.int32)})(), {"loss": jnp.float32(0.0)})
    with pytest.raises(trainer.TrainingError, match="max_nonfinite=0"):
        pending.flush(bar)


@pytest.mark.slow  # CI: the SIGTERM test resumes a stopped run; this one kills it mid-write
def test_sigkill_then_resume_continues_the_same_loss_curve(reference_run, tmp_path):
    _, want = reference_run
    workdir = str(tmp_path)
    proc = tr.start(tr.cli(workdir, *CLI_RUN))
    try:
        tr.wait_for(lambda: len(tr.metrics(workdir)) >= 6, proc, timeout=TIMEOUT, poll=0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        tr.kill(proc)
    reached = len(tr.metrics(workdir))
    assert proc.returncode == -signal.SIGKILL
    if reached >= 12:
        pytest.skip("the run finished before SIGKILL landed (machine too fast for the poll); nothing to resume")
    code, out, err = tr.run(tr.cli(workdir, *CLI_RUN), timeout=TIMEOUT)
    assert code == 0, err[-4000:]
    got = tr.metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, 13)), "metrics.jsonl must be cut back to the resumed step"
    np.testing.assert_allclose(losses(got), losses(want), rtol=0, atol=1e-6)
    assert checkpoints(workdir)[-1] == 12


def test_sigterm_saves_exits_cleanly_and_resumes(reference_run, tmp_path):
    _, want = reference_run
    workdir = str(tmp_path)
    proc = tr.start(tr.cli(workdir, *CLI_RUN))
    try:
        tr.wait_for(lambda: len(tr.metrics(workdir)) >= 3, proc, timeout=TIMEOUT, poll=0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code, out, err = tr.finish(proc, timeout=60)
    finally:
        tr.kill(proc)
    assert code == 0, f"SIGTERM must end the run cleanly (exit 0), got {code}: {err[-3000:]}"
    assert time.monotonic() - sent < 60
    rows = tr.metrics(workdir)
    reached = rows[-1]["step"]
    if reached >= 12:
        pytest.skip("the run finished before SIGTERM landed; nothing to resume")
    assert checkpoints(workdir)[-1] == reached, "a checkpoint at the step the run reached"
    code, out, err = tr.run(tr.cli(workdir, *CLI_RUN), timeout=TIMEOUT)
    assert code == 0, err[-4000:]
    got = tr.metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, 13))
    np.testing.assert_allclose(losses(got), losses(want), rtol=0, atol=1e-6)


# --------------------------------------------------------------------- 5. non-finite steps are skipped, then stop
def test_nonfinite_steps_are_skipped_then_training_stops(reference_run, tmp_path):
    _, want = reference_run
    workdir = str(tmp_path)
    rows = tr.probe("train", workdir, *CLI_RUN, "--config.max_nonfinite=2", check=False, timeout=TIMEOUT,
                    POISON_STEPS="3,6,7")
    assert rows and rows[-1].get("error") == "TrainingError", rows
    assert "max_nonfinite=2" in rows[-1]["message"] and "3 steps" in rows[-1]["message"]
    got = tr.metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, 8))
    assert [r["skipped"] for r in got] == [0, 0, 1, 1, 1, 2, 3]
    assert [r["finite"] for r in got] == [1, 1, 0, 1, 1, 0, 0]
    assert not np.isfinite(got[2]["loss"]) and np.isfinite(got[3]["loss"])
    np.testing.assert_allclose(losses(got[:2]), losses(want[:2]), rtol=0, atol=1e-6)
    # the last good checkpoint (step 4: the skipped step 3 left the parameters as they were) is intact: a clean
    # rerun restores it and trains on to the end with finite losses
    assert checkpoints(workdir) == [4]
    code, out, err = tr.run(tr.cli(workdir, *CLI_RUN), timeout=TIMEOUT)
    assert code == 0, err[-4000:]
    resumed = tr.metrics(workdir)
    assert [r["step"] for r in resumed] == list(range(1, 13))
    assert np.isfinite(losses(resumed[4:])).all() and resumed[-1]["skipped"] == 1


# --------------------------------------------------------------------------- 4. where gradients go (trainer's step)
def changed(a: dict, b: dict, prefix: str) -> dict[str, bool]:
    return {k: not np.array_equal(a[k], b[k]) for k in a if k.startswith(prefix)}


@pytest.fixture(scope="module")
def param_runs(tmp_path_factory):
    """Parameters after each of 3 steps of the trainer's own step (smoke config: lr 0 at step 1, warm-up)."""
    def run(name, *overrides):
        out = tmp_path_factory.mktemp(name)
        rows = tr.probe("params", str(out), "3", *overrides, timeout=TIMEOUT)
        return rows[-1], [load(out / f"step{s}.npz") for s in range(4)]
    return run


def test_gradients_reach_gate_cut_embeddings_and_backbone(param_runs):
    info, p = param_runs("full")
    assert info["trainable"] == ["backbone", "memory"] and np.isfinite(info["losses"]).all()
    assert not any(changed(p[1], p[0], "").values()), "step 1 runs at lr 0 (warm-up)"
    step2, step3 = changed(p[2], p[1], ""), changed(p[3], p[2], "")
    for name in ("memory/cut_video/table", "memory/cut_audio/table", "memory/stm_refinement/out/kernel",
                 "memory/stm_refinement/out/bias", "backbone/patchify_proj/kernel", "backbone/proj_out/kernel",
                 "backbone/audio_proj_out/kernel"):
        assert step2[name], f"{name} got no update"
    assert sum(v for k, v in step2.items() if k.startswith("backbone/blocks")) > 10
    # the gate's output layer starts at zero, so its hidden layer has no gradient until that layer has moved
    assert not step2["memory/stm_refinement/hidden/kernel"]
    assert step3["memory/stm_refinement/hidden/kernel"] and step3["memory/stm_refinement/hidden/bias"]


def test_frozen_backbone_stays_bit_identical(param_runs):
    info, p = param_runs("frozen", "--config.optimizer.freeze_backbone=True")
    assert info["trainable"] == ["memory"] and info["frozen"] == ["backbone"]
    for s in (1, 2, 3):
        assert not any(changed(p[s], p[0], "backbone/").values()), f"backbone moved by step {s}"
    assert all(v for k, v in changed(p[3], p[0], "memory/").items() if "table" in k or "kernel" in k)


def test_lora_trains_adapters_only(param_runs):
    info, p = param_runs("lora", "--config.lora.rank=4")
    assert info["trainable"] == ["lora", "memory"] and info["frozen"] == ["backbone"]
    for s in (1, 2, 3):
        assert not any(changed(p[s], p[0], "backbone/").values()), f"backbone moved by step {s}"
    b = changed(p[2], p[1], "lora/b/")
    assert b and all(b.values()), "every LoRA B gets an update on the first effective step"
    assert any(changed(p[3], p[0], "memory/").values())


# --------------------------------------------------------------------------------------------------- 6. bad input
def smoke_config(*overrides):
    from unityshots_jax.config_files import load_config

    return load_config(tr.SMOKE, list(overrides))


def test_garbage_checkpoint_directory_is_named(reference_run, tmp_path):
    from unityshots_jax.train.trainer import TrainingError, train

    src, _ = reference_run
    workdir = tmp_path / "w"
    (workdir / "checkpoints" / "5").mkdir(parents=True)
    (workdir / "checkpoints" / "5" / "state").write_bytes(b"\x00garbage" * 100)
    (workdir / "checkpoints" / "5" / "_CHECKPOINT_METADATA").write_text("{not json")
    (workdir / "config.json").write_text(open(os.path.join(src, "config.json")).read())
    with pytest.raises(TrainingError, match=r"checkpoints/5"):
        train(smoke_config(*CLI_RUN), str(workdir), progress=False)


def test_checkpoints_without_config_are_refused(tmp_path):
    from unityshots_jax.train.trainer import TrainingError, train

    (tmp_path / "checkpoints" / "5").mkdir(parents=True)
    (tmp_path / "checkpoints" / "5" / "junk").write_text("junk")
    with pytest.raises(TrainingError, match="not a unityshots workdir"):
        train(smoke_config(), str(tmp_path), progress=False)


def test_workdir_of_another_model_is_refused(reference_run, tmp_path):
    from unityshots_jax.train.trainer import TrainingError, train

    src, _ = reference_run
    (tmp_path / "config.json").write_text(open(os.path.join(src, "config.json")).read())
    with pytest.raises(TrainingError, match=r"different config\.transformer"):
        train(smoke_config("--config.transformer.num_layers=1"), str(tmp_path), progress=False)
    with pytest.raises(TrainingError, match=r"different config\.story"):
        train(smoke_config("--config.story.max_shots=3"), str(tmp_path), progress=False)
    assert json.load(open(tmp_path / "config.json"))["transformer"]["num_layers"] == 2, "the saved config is kept"


def test_cli_names_a_foreign_workdir(reference_run, tmp_path):
    src, _ = reference_run
    (tmp_path / "config.json").write_text(open(os.path.join(src, "config.json")).read())
    code, out, err = tr.run(tr.cli(str(tmp_path), "--config.transformer.num_layers=1"), timeout=120)
    assert code == 2 and str(tmp_path) in err and "different config.transformer" in err, err[-2000:]


def _write_bad_set(prefix: str, blobs: list[bytes]) -> None:
    from array_record.python.array_record_module import ArrayRecordWriter

    from unityshots_jax.data.record_writer import FORMAT, VERSION, WRITER_OPTIONS, manifest_path, shard_paths

    (path,) = shard_paths(prefix, 1)
    w = ArrayRecordWriter(path, WRITER_OPTIONS)
    for blob in blobs:
        w.write(blob)
    w.close()
    manifest = {"format": FORMAT, "version": VERSION, "count": len(blobs),
                "shards": [{"path": os.path.basename(path), "count": len(blobs)}], "config": None,
                "config_fingerprint": None, "writer_options": WRITER_OPTIONS}
    with open(manifest_path(prefix), "w") as f:
        json.dump(manifest, f)


@pytest.mark.parametrize("kind", ["garbage-bytes", "wrong-shape"])
def test_corrupt_records_raise_record_error_naming_the_record(kind, tmp_path):
    from unityshots_jax.data import RecordError, encode_record, random_story
    from unityshots_jax.story.story_config import StoryConfig
    from unityshots_jax.train.train_config import run_config
    from unityshots_jax.train.trainer import train

    run = run_config(smoke_config())
    if kind == "garbage-bytes":
        blobs = [b"\x07not a safetensors record" for _ in range(4)]
        pattern = r"record \d = position \d of data-00000-of-00001\.array_record.*bytes"
    else:  # records of another latent width (8 channels instead of 16)
        other = StoryConfig(**{**run.story.__dict__, "latent_channels": 8})
        blobs = [encode_record(random_story(other, np.random.default_rng(i), video_context_dim=32,
                                            audio_context_dim=16, story_id=f"bad-{i}")) for i in range(4)]
        pattern = r"story 'bad-\d'.*video_latents"
    prefix = str(tmp_path / "data")
    _write_bad_set(prefix, blobs)
    with pytest.raises(RecordError, match=pattern):
        train(smoke_config(f"--config.data.source={prefix}", "--config.steps=1"), str(tmp_path / "w"), progress=False)


def test_resume_survives_a_torn_metrics_line(reference_run, tmp_path):
    """A run killed while appending to metrics.jsonl can leave half a line; resuming must not choke on it."""
    import shutil

    from unityshots_jax.train.trainer import train

    src, want = reference_run
    workdir = tmp_path / "w"
    shutil.copytree(src, workdir, ignore=shutil.ignore_patterns("tensorboard"))
    with open(workdir / "metrics.jsonl", "a") as f:
        f.write('{"step": 13, "finite": 1.0, "grad_no')
    train(smoke_config(*CLI_RUN), str(workdir), progress=False)  # resumes at step 12: nothing left to run
    assert losses(tr.metrics(str(workdir))) == losses(want)


@pytest.mark.slow  # CI: test_sharded_step_matches_single_device covers the meshes
def test_resume_onto_a_different_mesh_continues_the_curve(reference_run, tmp_path):
    """Checkpoints written on a (data 2) mesh restore onto (fsdp 2) — orbax reshards to the new shardings — and the
    loss curve continues as the uninterrupted single-device run's (to the numerics of sharded reductions)."""
    _, want = reference_run
    workdir = str(tmp_path)
    first = ("--config.steps=8", "--config.checkpoint_every=4", "--config.mesh.data=2")
    code, _, err = tr.run(tr.cli(workdir, *first), timeout=TIMEOUT, devices=2)
    assert code == 0, err[-4000:]
    second = ("--config.steps=12", "--config.checkpoint_every=4", "--config.mesh.data=1", "--config.mesh.fsdp=2")
    code, _, err = tr.run(tr.cli(workdir, *second), timeout=TIMEOUT, devices=2)
    assert code == 0, err[-4000:]
    got = tr.metrics(workdir)
    assert [r["step"] for r in got] == list(range(1, 13))
    np.testing.assert_allclose(losses(got), losses(want), rtol=1e-4, atol=1e-5)
