"""Run an ltx-core `LTXModel` on a `VerifyCase` (imports torch and ltx-core)."""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from ltx_core.guidance.perturbations import (
    BatchedPerturbationConfig,
    Perturbation,
    PerturbationConfig,
    PerturbationType,
)
from ltx_core.model.transformer import Modality, X0Model

from unityshots_jax.reference.float64_reference import float64_math
from unityshots_jax.reference.ltx_reference import torch_dtype
from unityshots_jax.reference.verify_cases import StreamInputs, VerifyCase


def to_modality(stream: StreamInputs, dtype: str, *, is_video: bool) -> Modality:
    """Build the ltx-core `Modality` for one stream the way the pipelines do.

    latent `[batch, tokens, in_channels]` and context `[batch, text_tokens, context_dim]` in the model
    dtype; sigma `[batch]` float32; timesteps `[batch, tokens, 1]` float32 (the pipelines' patchified
    denoise mask times sigma; the model flattens it, `X0Model` broadcasts it over channels); positions
    `[batch, n_axes, tokens, 2]`: video in the model dtype (bf16 in bf16 pipelines, so the RoPE midpoint and
    `pos / max_pos` are computed in bf16 too), audio always float32; context_mask int64 or None.
    `dtype="float64"` (the ground-truth run) makes every float input float64, sigma and timesteps included.
    """
    model_dtype = torch_dtype(dtype)
    step_dtype = torch.float64 if dtype == "float64" else torch.float32
    positions = torch.from_numpy(np.ascontiguousarray(stream.positions, dtype=np.float32))
    if is_video or dtype == "float64":
        positions = positions.to(model_dtype)
    mask = None if stream.context_mask is None else torch.from_numpy(np.asarray(stream.context_mask, np.int64))
    return Modality(
        latent=torch.from_numpy(np.asarray(stream.latent, np.float32)).to(model_dtype),
        sigma=torch.from_numpy(np.asarray(stream.sigma, np.float32)).to(step_dtype),
        timesteps=torch.from_numpy(np.asarray(stream.timesteps, np.float32)).to(step_dtype)[..., None],
        positions=positions,
        context=torch.from_numpy(np.asarray(stream.context, np.float32)).to(model_dtype),
        enabled=True,
        context_mask=mask,
        attention_mask=None,
    )


def to_perturbations(case: VerifyCase) -> BatchedPerturbationConfig:
    """`BatchedPerturbationConfig` with one `PerturbationConfig` per sample of `case.perturbations`.

    Type names are the `PerturbationType` values; blocks are 0-based `transformer_blocks` indices (None =
    every block).
    """
    return BatchedPerturbationConfig([
        PerturbationConfig([Perturbation(PerturbationType(kind), None if blocks is None else list(blocks))
                            for kind, blocks in sample])
        for sample in case.perturbations
    ])


def _check_dtype(model: torch.nn.Module, dtype: str) -> None:
    param_dtype = next(model.parameters()).dtype
    if param_dtype != torch_dtype(dtype):
        raise ValueError(f"model parameters are {param_dtype}, but dtype={dtype!r} was requested")


def _modalities(case: VerifyCase, dtype: str) -> tuple[Modality | None, Modality | None]:
    video = None if case.video is None else to_modality(case.video, dtype, is_video=True)
    audio = None if case.audio is None else to_modality(case.audio, dtype, is_video=False)
    return video, audio


def _to_numpy(tensor: torch.Tensor | None) -> np.ndarray | None:
    """float64 outputs stay float64 (the ground truth); every other dtype comes back as float32."""
    if tensor is None:
        return None
    return tensor.detach().to(torch.float64 if tensor.dtype == torch.float64 else torch.float32).numpy()


def _precision(dtype: str):
    """`float64_math()` for the float64 run (ltx-core's float32-pinned steps in float64), else nothing."""
    return float64_math() if dtype == "float64" else contextlib.nullcontext()


def run_reference(
    model: torch.nn.Module, case: VerifyCase, dtype: str = "float32", *, threads: int | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Velocities `(v_video [batch, video_tokens, out_channels], v_audio [batch, audio_tokens,
    audio_out_channels])` as float32 numpy (None for an absent stream), from `model(video, audio, perturbations)`
    under `torch.inference_mode()`. `model` must already be in `dtype`; `threads` sets torch's thread count.
    `dtype="float64"`: a `.double()` model, float64 inputs, run under `float64_math()`; float64 outputs.
    """
    _check_dtype(model, dtype)
    if threads is not None:
        torch.set_num_threads(threads)
    video, audio = _modalities(case, dtype)
    with torch.inference_mode(), _precision(dtype):
        v_video, v_audio = model(video, audio, to_perturbations(case))
    return _to_numpy(v_video), _to_numpy(v_audio)


def run_reference_x0(
    model: torch.nn.Module, case: VerifyCase, dtype: str = "float32", *, threads: int | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Denoised predictions `x0 = latent - v * timesteps` per stream, `[batch, tokens, channels]` float32 numpy.

    Runs ltx-core's `X0Model(model)`: per-token timesteps (sigma * denoise mask) act as sigma, the product
    is computed in float32 and cast back to the latent dtype (so bf16 runs return bf16-rounded x0).
    """
    _check_dtype(model, dtype)
    if threads is not None:
        torch.set_num_threads(threads)
    video, audio = _modalities(case, dtype)
    with torch.inference_mode():
        x0_video, x0_audio = X0Model(model)(video, audio, to_perturbations(case))
    return _to_numpy(x0_video), _to_numpy(x0_audio)
