"""ltx-core run entirely in float64: the ground truth the parity criterion judges fp32 outputs against.

`model.double()` with float64 inputs is not yet a float64 computation: two steps of ltx-core 1.0.0 pin float32
whatever the model dtype — the sinusoidal timestep table (`get_timestep_embedding` builds its exponent with a
float32 `arange` and multiplies `timesteps.float()`) and the RoPE frequency grids (`generate_freq_grid_pytorch`
runs a float32 `pow`, `generate_freq_grid_np` casts its float64 grid to float32). Those are exactly the steps
whose fp32 rounding depends on the machine (torch's vector `exp` / `pow`). Inside `float64_math()` both are
replaced by the same formulas evaluated in float64, so the reference's float64 output does not depend on
how any CPU rounds. Imports torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from ltx_core.model.transformer import timestep_embedding as _timestep_module
from ltx_core.model.transformer import transformer_args as _args_module


def sinusoidal_embedding_f64(
    timesteps: torch.Tensor,
    embedding_dim: int,
    flip_sin_to_cos: bool = False,
    downscale_freq_shift: float = 1,
    scale: float = 1,
    max_period: int = 10000,
) -> torch.Tensor:
    """`[n]` timesteps → `[n, embedding_dim]` float64 sinusoidal embedding, every step in float64.

    Frequencies f_k = P^(−k / (half − shift)), k < half; arguments scale·t·f; halves `[sin, cos]`, or
    `[cos, sin]` with `flip_sin_to_cos`; an odd `embedding_dim` gets one trailing zero column.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must be 1-D [n], got shape {list(timesteps.shape)}")
    half = embedding_dim // 2
    k = torch.arange(half, dtype=torch.float64, device=timesteps.device)
    freqs = torch.exp(-math.log(max_period) * k / (half - downscale_freq_shift))
    args = scale * timesteps.to(torch.float64)[:, None] * freqs[None, :]
    halves = [torch.cos(args), torch.sin(args)] if flip_sin_to_cos else [torch.sin(args), torch.cos(args)]
    emb = torch.cat(halves, dim=-1)
    if embedding_dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def rope_grid_f64(theta: float, n_axes: int, inner_dim: int) -> torch.Tensor:
    """`[inner_dim // (2·n_axes)]` float64 RoPE base frequencies θ^(i/(n−1))·π/2, i < n (both ltx-core grids)."""
    n = inner_dim // (2 * n_axes)
    exponents = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return torch.pow(torch.tensor(float(theta), dtype=torch.float64), exponents) * (math.pi / 2)


@contextlib.contextmanager
def float64_math() -> Iterator[None]:
    """Within the block, ltx-core's float32-pinned steps (timestep table, RoPE grids) compute in float64.

    Use only around a `.double()` model run on float64 inputs; the originals are restored on exit.
    """
    patches = [
        (_timestep_module, "get_timestep_embedding", sinusoidal_embedding_f64),
        (_args_module, "generate_freq_grid_np", rope_grid_f64),
        (_args_module, "generate_freq_grid_pytorch", rope_grid_f64),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, replacement in patches:
            setattr(module, name, replacement)
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
