"""Machine-independent fp32 parity: judge our output against the reference run in float64, not float32.

Two fp32 implementations of the same math differ by rounding, and how far each lands from the exact result
depends on the machine (a CPU's vector `exp`, a GPU's `expf`, thread count, summation order). So we never
compare ours to the reference's fp32 output alone. The reference also runs in float64 (`ref64`, the ground
truth up to ~1e-16) and in float32 (`ref32`, what users run), and per tensor

    max |ours − ref64|  ≤  max(rel · max |ref64|,  c · max |ref32 − ref64|)

ours may be as far from the truth as `rel` of the output's scale (2e-5: the transformer's long-standing fp32
budget), or — on ill-conditioned inputs, where the reference's own fp32 error exceeds that — no more than `c`
times the reference's own fp32 error. `c = 4` (`docs/design.md`, "Parity criterion"): a different but equally
exact summation order or kernel (online softmax, fused matmuls) can land a few times further from the truth
than the reference on one tensor, never an order of magnitude; a real mistake (a wrong dtype, a dropped term,
an off-by-one) is orders of magnitude above both bounds. Nothing in the criterion depends on how one machine
rounds: perturbing the reference's fp32 arithmetic moves `ref32`, not `ref64`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

REL = 2e-5
C = 4.0


@dataclasses.dataclass(frozen=True)
class ParityResult:
    """One tensor's verdict. err: max |ours − ref64|; ref_err: max |ref32 − ref64|; scale: max |ref64|."""

    name: str
    err: float
    ref_err: float
    scale: float
    bound: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.err) and self.err <= self.bound)

    @property
    def rel(self) -> float:
        return self.err / max(self.scale, 1e-30)

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAIL"
        return (f"{self.name}: max|ours-ref64| {self.err:.3g} ({self.rel:.2e} of max|ref| {self.scale:.3g}); "
                f"reference fp32 error {self.ref_err:.3g}; bound {self.bound:.3g} [{verdict}]")


def parity(name: str, ours, ref32, ref64, *, rel: float = REL, c: float = C) -> ParityResult:
    """Judge `ours` (any shape) against the reference's fp32 and float64 outputs of the same shape."""
    ours, ref32, ref64 = (np.asarray(a, np.float64) for a in (ours, ref32, ref64))
    if not (ours.shape == ref32.shape == ref64.shape):
        raise ValueError(f"{name}: shapes differ: ours {list(ours.shape)}, ref32 {list(ref32.shape)}, ref64 {list(ref64.shape)}")
    scale = float(np.max(np.abs(ref64))) if ref64.size else 0.0
    err = float(np.max(np.abs(ours - ref64))) if ours.size else 0.0
    ref_err = float(np.max(np.abs(ref32 - ref64))) if ours.size else 0.0
    return ParityResult(name, err, ref_err, scale, max(rel * scale, c * ref_err))


def assert_parity(name: str, ours, ref32, ref64, *, rel: float = REL, c: float = C) -> ParityResult:
    """`parity(...)`, raising AssertionError with the full verdict when it fails."""
    result = parity(name, ours, ref32, ref64, rel=rel, c=c)
    if not result.ok:
        raise AssertionError(str(result))
    return result
