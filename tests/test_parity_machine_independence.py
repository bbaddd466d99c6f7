"""The fp32 parity criterion does not depend on how a machine rounds `exp`, and it still catches real mistakes.

ltx-core forms the timestep frequency table with torch's float32 `exp`, which is not correctly rounded: one Intel
CPU rounds entries 13, 44 and 119 one ulp up, an AMD EPYC (AVX-512 path) entries 12 and 106 (this project's CI
machine), a GPU differently again. Here the reference's fp32 run gets each of those tables (and a seeded random ±1-ulp table) on the 22B
(split RoPE) and 19B (interleaved RoPE) tiny layouts, while our port and the float64 ground truth stay as they
are: ours must pass against every one. Then deliberately wrong variants of ours must fail.
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from ltx_core.model.transformer import timestep_embedding as ltx_timestep  # noqa: E402

from helpers.checkpoints import Spec  # noqa: E402
from unityshots_jax import parity  # noqa: E402
from unityshots_jax.ltx import timestep as our_timestep  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig  # noqa: E402
from unityshots_jax.ltx.inputs import Perturbations  # noqa: E402
from unityshots_jax.parity_criterion import parity as judge  # noqa: E402
from unityshots_jax.reference.ltx_reference import load_reference  # noqa: E402
from unityshots_jax.reference.run_reference import run_reference  # noqa: E402
from unityshots_jax.reference.verify_cases import make_verify_cases  # noqa: E402

LAYOUTS = {"22b-split": Spec(), "19b-interleaved": Spec(layout="19b", rope="interleaved")}
CASES = ("plain", "first_frame")  # per-sample and per-token timesteps
HALF = 128

# entry -> ulps added to the correctly rounded float32 table
ULP_TABLES = {
    "intel-13-44-119": {13: 1, 44: 1, 119: 1},
    "amd-epyc-12-106": {12: 1, 106: 1},
    "down-5-60-127": {5: -1, 60: -1, 127: -1},
    "random-pm1": dict(enumerate(np.random.default_rng(0).integers(-1, 2, HALF).tolist())),
}


def _nudged_table(ulps: dict[int, int]) -> np.ndarray:
    """The correctly rounded float32 table f_k = exp(−ln(1e4)·k/128) with entries moved by whole ulps."""
    bits = our_timestep.timestep_frequencies(HALF, 10000.0).view(np.int32).copy()
    for k, n in ulps.items():
        bits[k] += n
    return bits.view(np.float32)


def _reference_embedding(table: np.ndarray):
    """ltx-core's `get_timestep_embedding` (flip_sin_to_cos, no shift: the only use in LTXModel) with `table`."""

    def embed(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1, max_period=10000):
        assert embedding_dim == 2 * HALF and flip_sin_to_cos and downscale_freq_shift == 0 and scale == 1
        args = timesteps[:, None].float() * torch.from_numpy(table)[None, :]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    return embed


@pytest.fixture(scope="module", params=list(LAYOUTS), ids=list(LAYOUTS))
def layout(request, converted):
    """(reference fp32 model, float64 ground truth per case, our outputs per case, our model, cases)."""
    src, dst = converted(LAYOUTS[request.param])
    cfg, graphdef, params = parity.load_flax(dst, "float32")
    config = parity.read_converted_config(dst)[0]["checkpoint_config"]["transformer"]
    cases = [c for c in make_verify_cases(config, 0) if c.name in CASES]
    reference64 = load_reference(src, "float64")
    truths = {c.name: run_reference(reference64, c, "float64") for c in cases}
    ours = {c.name: _ours(graphdef, params, cfg, c) for c in cases}
    return load_reference(src, "float32"), truths, ours, (graphdef, params, cfg), cases


def _ours(graphdef, params, cfg, case) -> tuple[np.ndarray, np.ndarray]:
    """Our fp32 velocities, traced afresh (a patched timestep table is picked up, not a cached compile)."""
    run = jax.jit(lambda p, v, a, pert: parity.nnx.merge(graphdef, p)(v, a, pert, ExecutionConfig(attention="dense")))
    out = run(params, parity.stream_input(case.video, "float32", is_video=True),
              parity.stream_input(case.audio, "float32", is_video=False),
              Perturbations.from_spec(case.perturbations, cfg.num_layers))
    return tuple(np.asarray(x) for x in out)


def _verdicts(ours, refs32, truths, case):
    return [judge(f"{case}/{stream}", o, r32, r64)
            for stream, o, r32, r64 in zip(("video", "audio"), ours, refs32, truths)]


@pytest.mark.parametrize("table", list(ULP_TABLES), ids=list(ULP_TABLES))
def test_ours_passes_whatever_the_references_exp_rounding(layout, table, monkeypatch):
    reference, truths, ours, _, cases = layout
    nudged = _nudged_table(ULP_TABLES[table])
    assert np.max(np.abs(nudged.view(np.int32) - our_timestep.timestep_frequencies(HALF, 10000.0).view(np.int32))) == 1
    with monkeypatch.context() as patch:
        patch.setattr(ltx_timestep, "get_timestep_embedding", _reference_embedding(_nudged_table({})))
        rounded_refs = {c.name: run_reference(reference, c) for c in cases}
    monkeypatch.setattr(ltx_timestep, "get_timestep_embedding", _reference_embedding(nudged))
    for case in cases:
        refs32 = run_reference(reference, case)
        # the nudge really reaches the reference's output (against a correctly rounded table) ...
        assert max(np.max(np.abs(a - b)) for a, b in zip(refs32, rounded_refs[case.name])) > 0
        # ... and ours, unchanged, passes against the float64 truth with that reference's fp32 error
        for verdict in _verdicts(ours[case.name], refs32, truths[case.name], case.name):
            assert verdict.ok, str(verdict)


_RIGHT_TABLE = our_timestep.timestep_frequencies

WRONG_TABLES = {
    # the whole table 1e-5 too large (≈ 84 ulps): a subtly wrong constant
    "scaled-1e-5": lambda half, period: (_RIGHT_TABLE(half, period) * (1 + 1e-5)).astype(np.float32),
    # exponent over (half − 1): ltx-core's `downscale_freq_shift` default of 1, which LTX does not use
    "shift-1": lambda half, period: np.exp(-math.log(period) * np.arange(half) / (half - 1)).astype(np.float32),
    # f_{k+1} in slot k: an off-by-one in the index
    "off-by-one": lambda half, period: np.exp(-math.log(period) * (np.arange(half) + 1) / half).astype(np.float32),
}


@pytest.mark.parametrize("wrong", list(WRONG_TABLES), ids=list(WRONG_TABLES))
def test_a_wrong_timestep_table_fails(layout, wrong, monkeypatch):
    reference, truths, _, (graphdef, params, cfg), cases = layout
    monkeypatch.setattr(our_timestep, "timestep_frequencies", WRONG_TABLES[wrong])
    case = cases[0]
    bad = _ours(graphdef, params, cfg, case)
    verdicts = _verdicts(bad, run_reference(reference, case), truths[case.name], case.name)
    # measured: err / bound 8–38 for "scaled-1e-5", 3600–21000 for the others
    assert not any(v.ok for v in verdicts), [str(v) for v in verdicts]


def test_a_dropped_term_fails(layout, monkeypatch):
    """Our AdaLN without the sin half of the timestep embedding (the cos half kept)."""
    reference, truths, _, (graphdef, params, cfg), cases = layout
    original = our_timestep.timestep_embedding

    def cos_only(t, channels=our_timestep.TIMESTEP_CHANNELS, max_period=10000.0):
        emb = original(t, channels, max_period)
        return emb.at[:, channels // 2:].set(0.0)

    monkeypatch.setattr(our_timestep, "timestep_embedding", cos_only)
    case = cases[0]
    bad = _ours(graphdef, params, cfg, case)
    verdicts = _verdicts(bad, run_reference(reference, case), truths[case.name], case.name)
    assert not any(v.ok for v in verdicts), [str(v) for v in verdicts]
    assert all(v.err > 10 * v.bound for v in verdicts)
