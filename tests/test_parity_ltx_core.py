"""End-to-end parity with ltx-core 1.0.0 through the code users run.

tiny random reference model in the official layout → `ltx_convert.convert` → `parity.verify` (ltx-core loads the
.safetensors through its own loader, ours restores the orbax directory), on every parity case. fp32 rows are judged
by `parity_criterion` against ltx-core run in float64 (no machine's rounding enters), bf16 rows against ltx-core's
bf16 run with the stated 4e-2 tolerance.
"""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.checkpoints import Spec  # noqa: E402
from unityshots_jax import parity  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig  # noqa: E402

# rows per model type: 9 AV cases × 2 streams; single-stream models keep their deduplicated cases
AV_ROWS = 16

# (spec, attention kernel, attention_chunk). Every kernel meets several layouts; "chunked" / "flash" with a chunk
# of 128 or 256 (> 72 tokens) run as one chunk, chunk 16 really splits the queries (padding, masked text keys).
CASES = {
    "22b-split-chunked": (Spec(), "chunked", 256),
    "22b-interleaved-dense": (Spec(rope="interleaved"), "dense", 256),
    "19b-interleaved-xla": (Spec(layout="19b", rope="interleaved"), "xla", 256),
    "19b-split-chunked16": (Spec(layout="19b", rope="split"), "chunked", 16),
    "22b-float32-grid-flash16": (Spec(frequencies_precision="float32"), "flash", 16),
    "19b-float32-grid": (Spec(layout="19b", rope="interleaved", frequencies_precision="float32"), "chunked", 256),
    # 3 layers, video 4 heads × 8, audio 4 heads × 4 (split RoPE needs equal head counts in an AV model)
    "wide-split-dense": (Spec(num_layers=3, heads=4, head_dim=8, audio_heads=4, audio_head_dim=4), "dense", 256),
    # interleaved RoPE allows different video / audio head counts (and head dims)
    "heads-differ-interleaved-chunked16": (
        Spec(num_layers=3, rope="interleaved", heads=4, head_dim=8, audio_heads=2, audio_head_dim=12), "chunked", 16
    ),
    "video-only-xla": (Spec(model_type="video_only"), "xla", 256),
    "audio-only-dense": (Spec(model_type="audio_only"), "dense", 256),
    "19b-audio-only-chunked16": (Spec(layout="19b", rope="interleaved", model_type="audio_only"), "chunked", 16),
    "19b-video-only-split-flash": (Spec(layout="19b", rope="split", model_type="video_only"), "flash", 128),
}


def _check(rows, model_type: str, dtype: str = "float32") -> None:
    assert rows, "verify returned no rows"
    streams = {r.stream for r in rows}
    expected = {"audio_video": {"video", "audio"}, "video_only": {"video"}, "audio_only": {"audio"}}[model_type]
    assert streams == expected
    if model_type == "audio_video":
        assert len(rows) == AV_ROWS
    failed = [r for r in rows if not r.ok]
    assert not failed, parity.format_rows(failed, dtype)
    assert all(r.result.err <= r.result.bound for r in rows)
    if dtype == "float32":  # every row met the machine-independent criterion against a real float64 run
        assert all(r.result.ref_err > 0 for r in rows)


# CI runs one case per layout / kernel / stream family; the rest are marked slow (python -m pytest -m slow)
SLOW_CASES = {"22b-interleaved-dense", "19b-split-chunked16", "19b-float32-grid", "wide-split-dense",
              "19b-audio-only-chunked16", "19b-video-only-split-flash"}


@pytest.mark.parametrize("case", [pytest.param(c, id=k, marks=[pytest.mark.slow] if k in SLOW_CASES else [])
                                  for k, c in CASES.items()])
def test_fp32_parity(case, converted, monkeypatch):
    spec, attention, chunk = case
    monkeypatch.setattr(parity, "ExecutionConfig", functools.partial(ExecutionConfig, attention_chunk=chunk))
    assert parity.ExecutionConfig(attention=attention).attention_chunk == chunk
    src, dst = converted(spec)
    _check(parity.verify(src, dst, dtype="float32", attention=attention), spec.model_type)


def test_bf16_parity_22b_split(converted):
    src, dst = converted(Spec())
    _check(parity.verify(src, dst, dtype="bfloat16"), "audio_video", "bfloat16")


def test_verify_detects_different_weights(checkpoint, converted):
    """Same config, other random weights: every row fails (verify is not vacuous)."""
    spec = Spec(model_type="video_only")
    _, dst = converted(spec)
    other = checkpoint(Spec(model_type="video_only", seed=1))
    rows = parity.verify(other, dst)
    assert rows and not any(r.ok for r in rows)
    assert all(r.rel > 1e-2 for r in rows)
