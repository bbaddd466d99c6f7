"""Subprocess plumbing for the training tests: environment (CPU, device count, a shared persistent compilation
cache), bounded runs that are always killed, and the probe script's JSON rows.

Compiling the tiny model's training step takes ~1-2 min of CPU time; every run here goes through JAX's persistent
compilation cache, so a program is compiled once per machine and later runs (and later sessions) load it in
seconds. The cache lives in $UNITYSHOTS_TEST_JAX_CACHE, default <tmp>/unityshots-test-jax-cache-<uid>; entries
are keyed by JAX version, flags and the program, so sharing it is safe.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

from helpers.xla_flags import xla_flags

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
PROBE = os.path.join(TESTS, "helpers", "train_probe.py")
SMOKE = os.path.join(ROOT, "configs", "smoke.py")


def cache_dir() -> str:
    default = os.path.join(tempfile.gettempdir(), f"unityshots-test-jax-cache-{os.getuid()}")
    path = os.environ.get("UNITYSHOTS_TEST_JAX_CACHE", default)
    os.makedirs(path, exist_ok=True)
    return path


def env(devices: int = 1, **extra: str) -> dict[str, str]:
    out = dict(os.environ)
    out.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=xla_flags(devices),
        JAX_COMPILATION_CACHE_DIR=cache_dir(),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
        PYTHONPATH=os.pathsep.join(p for p in (ROOT, out.get("PYTHONPATH", "")) if p),
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    out.update(extra)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], *, devices: int = 1, cwd: str = ROOT, **extra: str) -> subprocess.Popen:
    """Start a child in its own process group (so a kill reaches everything it spawned)."""
    return subprocess.Popen(args, env=env(devices, **extra), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the child's process group (it was started by us with its own session) if it is still running."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """(returncode, stdout, stderr); the child is killed if it runs past `timeout` seconds."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(proc)
        out, err = proc.communicate()
        raise AssertionError(f"{proc.args} ran past {timeout} s; killed.\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return proc.returncode, out, err


def run(args: list[str], *, timeout: float, devices: int = 1, **extra: str) -> tuple[int, str, str]:
    return finish(start(args, devices=devices, **extra), timeout)


def probe(*args: str, timeout: float = 300, devices: int = 1, check: bool = True, **extra: str) -> list[dict]:
    """Run train_probe.py; its PROBE rows. check: the run must exit 0."""
    code, out, err = run([sys.executable, PROBE, *args], timeout=timeout, devices=devices, **extra)
    rows = rows_of(out)
    if check:
        assert code == 0, f"probe {args} exited {code}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-5000:]}"
    return rows


def rows_of(out: str) -> list[dict]:
    return [json.loads(line[len("PROBE "):]) for line in out.splitlines() if line.startswith("PROBE ")]


def cli(workdir: str, *overrides: str) -> list[str]:
    """The `unityshots train` command line for the smoke config (run through this interpreter)."""
    return [sys.executable, "-m", "unityshots_jax.cli", "train", "--config", SMOKE, "--workdir", workdir, "--quiet",
            *overrides]


def metrics(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = f.read().splitlines()
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            break
    return rows


def wait_for(predicate, proc: subprocess.Popen, timeout: float, poll: float = 0.05) -> None:
    """Poll `predicate()` until true; fail if `proc` exits first or `timeout` passes (killing it)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"{proc.args} exited {proc.returncode} early\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            kill(proc)
            raise AssertionError(f"{proc.args}: condition not reached in {timeout} s; killed")
        time.sleep(poll)


# step-level runs: a smaller model than configs/smoke.py (1 layer, 2 shots) so each mesh compiles in about half
# the time; batch 4 splits over data × fsdp of every mesh; no warm-up, so both steps move the parameters
SMALL = ("--config.transformer.num_layers=1", "--config.story.max_shots=2", "--config.batch_size=4",
         "--config.optimizer.warmup_steps=0")
RTOL, ATOL = 1e-5, 2e-5  # loss: relative; parameters: |a - b| ≤ ATOL + RTOL·|b|
TIMEOUT = 600  # a cold compilation cache on a loaded 2-core machine; warm runs take ~20-40 s


def load(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def assert_params_close(got: dict, want: dict, what: str) -> None:
    assert got.keys() == want.keys(), what
    worst = max(float(np.max(np.abs(got[k] - want[k]) - RTOL * np.abs(want[k]))) for k in want)
    assert worst <= ATOL, f"{what}: parameters differ by up to {worst} beyond {RTOL}·|ref|"
