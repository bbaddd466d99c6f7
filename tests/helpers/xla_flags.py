"""XLA flags every test process runs with (pytest itself, set by conftest.py, and every child it starts).

The suite is bound by XLA:CPU compile time, not run time: its programs are small, but there are hundreds of them.
At LLVM optimisation level 0 without the expensive passes, compiling the tiny story model's training step takes
about 40 % less CPU (experiments/RESULTS.md, "Test suite time"). Numerics are not loosened by this: every parity
test bounds ours by the reference's own float32-vs-float64 gap, which holds for any correct evaluation order, and
the exact-equality tests compare two runs of the same process setup. Users' runs keep XLA's defaults.
"""

from __future__ import annotations

import os

COMPILE_FAST = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")


def xla_flags(devices: int | None = None) -> str:
    """This process's XLA_FLAGS plus the compile-fast flags and, if given, a forced device count (replacing one)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
             if devices is None or not f.startswith("--xla_force_host_platform_device_count")]
    flags += [f for f in COMPILE_FAST if f not in flags]
    if devices is not None:
        flags.append(f"--xla_force_host_platform_device_count={devices}")
    return " ".join(flags)
