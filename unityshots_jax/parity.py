"""`unityshots verify`: run ltx-core (the reference) and our Flax model on the same seeded inputs and compare.

The reference is built from the original safetensors through ltx-core's own loader; ours is restored from the
converted directory, so the check covers the conversion code users run. Needs the `reference` extra (torch,
ltx-core 1.0.0).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.ltx_convert import load_params, params_as, read_checkpoint_config, read_converted_config
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.inputs import Perturbations, StreamInput
from unityshots_jax.ltx.transformer import abstract_model, forward

# max |ours − reference| ≤ tolerance × max |reference|, per stream and case.
TOLERANCE = {"float32": 2e-5, "bfloat16": 4e-2}


@dataclasses.dataclass(frozen=True)
class Row:
    case: str
    stream: str
    max_abs: float
    rel: float
    ok: bool


def stream_input(stream, dtype: str, *, is_video: bool) -> StreamInput | None:
    """A numpy `StreamInputs` parity case → our `StreamInput` in `dtype`.

    As in the pipelines: sigma and timesteps stay float32; in bf16 the video positions are bf16 (cast to the
    model dtype), audio positions float32.
    """
    if stream is None:
        return None
    act = jnp.dtype(dtype)
    pos_dtype = act if is_video else jnp.float32
    return StreamInput(
        latent=jnp.asarray(stream.latent, act),
        sigma=jnp.asarray(stream.sigma, jnp.float32),
        timesteps=jnp.asarray(stream.timesteps, jnp.float32),
        positions=jnp.asarray(stream.positions, pos_dtype),
        context=jnp.asarray(stream.context, act),
        context_mask=None if stream.context_mask is None else jnp.asarray(stream.context_mask),
    )


def cases_for_model(cases: list, model_type: str) -> list:
    """The audio-video parity cases, reduced to the one stream of a single-stream model (deduplicated)."""
    if model_type == "audio_video":
        return cases
    keep = "video" if model_type == "video_only" else "audio"
    own_skip = f"skip_{keep}_self_attn"
    out, seen = [], set()
    for case in cases:
        perturbations = tuple(tuple(p for p in sample if p[0] == own_skip) for sample in case.perturbations)
        reduced = dataclasses.replace(
            case,
            video=case.video if keep == "video" else None,
            audio=case.audio if keep == "audio" else None,
            perturbations=perturbations,
        )
        signature = (case.batch, perturbations, case.name in ("first_frame", "distinct_sigmas"))
        if getattr(reduced, keep) is None or signature in seen:
            continue
        seen.add(signature)
        out.append(reduced)
    return out


def load_flax(converted: str, dtype: str) -> tuple[LTXConfig, nnx.GraphDef, nnx.State]:
    """(config, graphdef, parameters cast to `dtype`) from a converted directory."""
    cfg, tree = load_params(converted)
    model = abstract_model(cfg)
    graphdef, state = nnx.split(model)
    nnx.replace_by_pure_dict(state, params_as(tree, dtype))
    return cfg, graphdef, state


def verify(src: str, converted: str, *, dtype: str = "float32", seed: int = 0, attention: str = "auto") -> list[Row]:
    """Compare reference and Flax outputs on every parity case; returns one row per (case, stream)."""
    from unityshots_jax.reference.ltx_reference import load_reference
    from unityshots_jax.reference.run_reference import run_reference
    from unityshots_jax.reference.verify_cases import make_verify_cases

    if dtype not in TOLERANCE:
        raise ValueError(f"--dtype: expected one of {sorted(TOLERANCE)}, got {dtype!r}")
    meta, cfg = read_converted_config(converted)
    full, _ = read_checkpoint_config(SafetensorsFile(src))
    if full != meta["checkpoint_config"]:
        raise CheckpointError(f"{src}: its metadata['config'] differs from the one {converted} was converted from")
    cfg, graphdef, params = load_flax(converted, dtype)
    reference = load_reference(src, dtype, model_type=cfg.model_type)
    transformer = meta["checkpoint_config"]["transformer"]
    execution = ExecutionConfig(attention=attention, dtype=dtype)
    rows: list[Row] = []
    for case in cases_for_model(make_verify_cases(transformer, seed, dtype=dtype), cfg.model_type):
        ref_v, ref_a = run_reference(reference, case, dtype)
        ours = forward(
            graphdef,
            params,
            stream_input(case.video, dtype, is_video=True),
            stream_input(case.audio, dtype, is_video=False),
            Perturbations.from_spec(case.perturbations, cfg.num_layers),
            execution,
        )
        for name, ref, out in (("video", ref_v, ours[0]), ("audio", ref_a, ours[1])):
            if ref is None:
                continue
            out = np.asarray(jnp.asarray(out, jnp.float32))
            err = float(np.max(np.abs(out - ref)))
            scale = float(np.max(np.abs(ref)))
            rel = err / scale if scale else err
            rows.append(Row(case.name, name, err, rel, bool(np.isfinite(rel) and rel <= TOLERANCE[dtype])))
    return rows


def format_rows(rows: list[Row], dtype: str) -> str:
    lines = [f"{'case':<22}{'stream':<8}{'max|Δ|':>12}{'max|Δ|/max|ref|':>18}  (tolerance {TOLERANCE[dtype]:g}, {dtype})"]
    for r in rows:
        lines.append(f"{r.case:<22}{r.stream:<8}{r.max_abs:>12.3e}{r.rel:>18.3e}  {'ok' if r.ok else 'FAIL'}")
    return "\n".join(lines)
