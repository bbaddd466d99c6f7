"""XLA flags every test process runs with (pytest itself, set by conftest.py, and every child it starts).

The suite is bound by XLA:CPU compile time, not run time: its programs are small, but there are hundreds of them.
At LLVM optimisation level 0 without the expensive passes, and with XLA:CPU's classic elemental IR emitters instead
of its newer MLIR fusion emitters, compiling the tiny story model's training step takes about a third of the CPU
time of XLA's defaults (experiments/RESULTS.md, "Test suite time"). Numerics are not loosened by this: every parity
test bounds ours by the reference's own float32-vs-float64 gap, which holds for any correct evaluation order, and
the exact-equality tests compare two runs of the same process setup. Users' runs keep XLA's defaults.

XLA aborts a process whose XLA_FLAGS holds a flag it does not know, and a later jaxlib may retire one of these
(the classic emitters are the likeliest), so the flags are checked once in a child process and any the installed
jaxlib rejects is left out with a warning: the suite is then slower, never dead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

COMPILE_FAST = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true",
                "--xla_cpu_use_fusion_emitters=false")
_CHECKED = "UNITYSHOTS_TEST_COMPILE_FAST"  # the accepted flags, passed on to every child through the environment


def _accepted(flags: tuple[str, ...]) -> bool:
    """Whether a CPU backend starts with exactly these XLA flags (an unknown flag aborts the child)."""
    env = {**os.environ, "XLA_FLAGS": " ".join(flags), "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.run([sys.executable, "-c", "import jax; jax.devices('cpu')"], env=env, capture_output=True,
                           timeout=300, check=False)
    return child.returncode == 0


def compile_fast() -> tuple[str, ...]:
    """COMPILE_FAST without the flags this jaxlib rejects; checked once per process tree."""
    if _CHECKED in os.environ:
        return tuple(os.environ[_CHECKED].split())
    kept = COMPILE_FAST if _accepted(COMPILE_FAST) else tuple(f for f in COMPILE_FAST if _accepted((f,)))
    if dropped := [f for f in COMPILE_FAST if f not in kept]:
        warnings.warn(f"this jaxlib's XLA rejects {dropped}; tests run without them (slower compiles)", stacklevel=2)
    os.environ[_CHECKED] = " ".join(kept)
    return kept


def xla_flags(devices: int | None = None) -> str:
    """This process's XLA_FLAGS plus the compile-fast flags and, if given, a forced device count (replacing one)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if devices is None or not f.startswith("--xla_force_host_platform_device_count")]
    flags += [f for f in compile_fast() if f not in flags]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(flags)
