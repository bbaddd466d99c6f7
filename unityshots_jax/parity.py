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
from unityshots_jax.parity_criterion import C, REL, ParityResult, parity

# float32, per stream and case: max |ours − ref64| ≤ max(REL·max|ref64|, C·max|ref32 − ref64|), ref64 being ltx-core
# run entirely in float64 and ref32 ltx-core in float32 (`parity_criterion`; no machine's rounding enters).
# bfloat16: max |ours − ref_bf16| ≤ 4e-2·max|ref_bf16| against ltx-core's own bf16 run (docs/design.md, "Parity criterion": the
# reference's bf16 error from the float64 truth is 2–15 %, too large to catch a wrong dtype against the truth).
TOLERANCE = {"float32": REL, "bfloat16": 4e-2}


@dataclasses.dataclass(frozen=True)
class Row:
    """One (case, stream) verdict; `result` holds max|ours − ref64|, the reference's own error and the bound."""

    case: str
    stream: str
    result: ParityResult

    @property
    def max_abs(self) -> float:
        return self.result.err

    @property
    def rel(self) -> float:
        return self.result.rel

    @property
    def ok(self) -> bool:
        return self.result.ok


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
    """Compare our outputs with ltx-core's on every parity case; returns one row per (case, stream).

    float32: ltx-core runs twice per case, in float32 (what users run) and entirely in float64 (the ground
    truth), and each row applies `parity_criterion.parity`. bfloat16: against ltx-core's bf16 run, relative
    tolerance `TOLERANCE["bfloat16"]` (the same function with the bf16 run as truth and c = 0).
    """
    from unityshots_jax.reference.ltx_reference import load_reference
    from unityshots_jax.reference.verify_cases import make_verify_cases

    if dtype not in TOLERANCE:
        raise ValueError(f"--dtype: expected one of {sorted(TOLERANCE)}, got {dtype!r}")
    meta, cfg = read_converted_config(converted)
    full, _ = read_checkpoint_config(SafetensorsFile(src))
    if full != meta["checkpoint_config"]:
        raise CheckpointError(f"{src}: its metadata['config'] differs from the one {converted} was converted from")
    cfg, graphdef, params = load_flax(converted, dtype)
    cases = cases_for_model(make_verify_cases(meta["checkpoint_config"]["transformer"], seed, dtype=dtype), cfg.model_type)
    # one reference model in memory at a time (a float64 22B needs ~180 GB of host memory on its own)
    refs = _reference_outputs(load_reference(src, dtype, model_type=cfg.model_type), cases, dtype)
    truths = refs
    if dtype == "float32":
        truths = _reference_outputs(load_reference(src, "float64", model_type=cfg.model_type), cases, "float64")
    execution = ExecutionConfig(attention=attention, dtype=dtype)
    rows: list[Row] = []
    for case, ref_pair, truth_pair in zip(cases, refs, truths):
        ours = forward(
            graphdef,
            params,
            stream_input(case.video, dtype, is_video=True),
            stream_input(case.audio, dtype, is_video=False),
            Perturbations.from_spec(case.perturbations, cfg.num_layers),
            execution,
        )
        for name, ref, truth, out in zip(("video", "audio"), ref_pair, truth_pair, ours):
            if ref is None:
                continue
            out = np.asarray(jnp.asarray(out, jnp.float32))
            c = C if dtype == "float32" else 0.0
            rows.append(Row(case.name, name, parity(f"{case.name}/{name}", out, ref, truth, rel=TOLERANCE[dtype], c=c)))
    return rows


def verify_components(src: str, converted: str, *, seed: int = 0,
                      text_shape: tuple[int, int] | None = None) -> list[Row]:
    """One row per non-transformer component the file holds (text connectors' video / audio contexts, video VAE
    encoder / decoder, audio mel front end, encoder, decoder, vocoder + BWE), ours loaded from `converted`,
    ltx-core from `src`; float32 criterion.

    text_shape: (width, hidden states) of the Gemma the text projection was made for (default: ltx-core's built-in
    Gemma-3 12B, 3840 × 49, which the official file is made for)."""
    meta, _ = read_converted_config(converted)
    config = meta["checkpoint_config"]
    results = []
    audio_video = meta["ltx_config"].get("model_type") == "audio_video"  # the LTX-2.3 AV text path (issue 10)
    if audio_video and "text_embedding_projection.video_aggregate_embed.weight" in meta["tensor_order"]:
        from unityshots_jax.reference.verify_text import verify_text

        dim, states = text_shape or (None, None)
        results += verify_text(src, converted, seed=seed, dim=dim, num_states=states)
    if "vae" in config:
        from unityshots_jax.reference.verify_video import verify_video

        results += verify_video(src, converted, seed=seed)
    if "audio_vae" in config:
        from unityshots_jax.reference.verify_audio import verify_audio

        results += verify_audio(src, converted, seed=seed)
    return [Row("component", r.name, r) for r in results]


def _reference_outputs(model, cases: list, dtype: str) -> list:
    """ltx-core's (video, audio) outputs per case; `model` is dropped afterwards."""
    from unityshots_jax.reference.run_reference import run_reference

    return [run_reference(model, case, dtype) for case in cases]


def format_rows(rows: list[Row], dtype: str) -> str:
    """A table: per row max|ours − truth|, its fraction of max|truth|, the reference's own error, the bound."""
    if dtype == "float32":
        rule = f"max|ours−ref64| ≤ max({TOLERANCE[dtype]:g}·max|ref64|, {C:g}·max|ref32−ref64|)"
    else:
        rule = f"max|ours−ref| ≤ {TOLERANCE[dtype]:g}·max|ref|, ref = ltx-core in {dtype}"
    lines = [f"{'case':<22}{'stream':<16}{'max|Δ|':>12}{'/max|ref|':>12}{'ref err':>12}{'bound':>12}  ({rule})"]
    for r in rows:
        res = r.result
        lines.append(f"{r.case:<22}{r.stream:<16}{res.err:>12.3e}{res.rel:>12.3e}{res.ref_err:>12.3e}"
                     f"{res.bound:>12.3e}  {'ok' if r.ok else 'FAIL'}")
    return "\n".join(lines)
