"""Self-check of the PyTorch reference side of the parity harness (tiny models, CPU, a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from unityshots_jax.reference import tiny_configs, verify_cases  # noqa: E402
from unityshots_jax.reference.ltx_reference import (  # noqa: E402
    CHECKPOINT_PREFIX,
    add_fake_connector_tensors,
    build_random_reference,
    load_reference,
    save_official_checkpoint,
)
from unityshots_jax.reference.run_reference import run_reference, run_reference_x0  # noqa: E402

SEED = 1234
TOL = 1e-5


def _outputs(model, cases, dtype="float32"):
    return {case.name: run_reference(model, case, dtype, threads=1) for case in cases}


def _max_diff(a, b):
    return float(np.max(np.abs(a - b)))


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    config = tiny_configs.tiny_transformer_config()
    model = build_random_reference(config, SEED)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_official_checkpoint(model, config, path, extra_tensors=add_fake_connector_tensors(config, SEED))
    reloaded = load_reference(path, threads=1)
    cases = verify_cases.make_verify_cases(config, SEED)
    return config, model, path, reloaded, cases, _outputs(model, cases)


def test_package_imports_without_torch():
    code = ("import sys; import unityshots_jax.reference, unityshots_jax.reference.tiny_configs, "
            "unityshots_jax.reference.verify_cases; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_invariants():
    assert tiny_configs.LTX23_TRANSFORMER_CONFIG["num_layers"] == 48
    with pytest.raises(ValueError, match="audio_num_attention_heads"):
        tiny_configs.tiny_transformer_config(audio_heads=4)
    with pytest.raises(ValueError, match="attention_head_dim"):
        tiny_configs.tiny_transformer_config(head_dim=15)
    tiny_configs.tiny_transformer_config(audio_heads=4, rope_type="interleaved")  # allowed


def test_checkpoint_layout_and_round_trip(tiny_setup):
    from safetensors import safe_open

    config, model, path, reloaded, cases, before = tiny_setup
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        metadata = f.metadata()
    assert json.loads(metadata["config"]) == {"transformer": config}
    assert metadata["model_version"] == "2.3.0"
    model_keys = {CHECKPOINT_PREFIX + k for k in model.state_dict()}
    assert model_keys <= keys
    assert any(".video_embeddings_connector." in k for k in keys - model_keys)
    after = _outputs(reloaded, cases)
    for name, (video, audio) in before.items():
        for ref, out in ((video, after[name][0]), (audio, after[name][1])):
            assert (ref is None) == (out is None), name
            if ref is not None:
                assert np.all(np.isfinite(ref)), name
                assert _max_diff(ref, out) <= TOL, name


def test_perturbations_change_outputs(tiny_setup):
    out = tiny_setup[-1]
    plain_v, plain_a = out["plain"]
    for name in ("first_frame", "distinct_sigmas", "stg", "av_isolated", "av_isolated_partial"):
        assert _max_diff(out[name][0], plain_v) > 1e-3, name
        assert _max_diff(out[name][1], plain_a) > 1e-3, name
    # partial STG on sample 0: sample 1 unchanged, sample 0 equals the whole-batch (passthrough) run
    stg_v, stg_a = out["stg"]
    assert _max_diff(stg_v[1], plain_v[1]) <= TOL and _max_diff(stg_a[1], plain_a[1]) <= TOL
    assert _max_diff(stg_v[0], plain_v[0]) > 1e-3
    assert _max_diff(stg_v[:1], out["stg_whole_batch"][0]) <= TOL
    assert _max_diff(stg_a[:1], out["stg_whole_batch"][1]) <= TOL
    # partial isolation on sample 1 only; full isolation == single-stream runs
    iso_v, iso_a = out["av_isolated"]
    part_v, part_a = out["av_isolated_partial"]
    assert _max_diff(part_v[0], plain_v[0]) <= TOL and _max_diff(part_v[1], iso_v[1]) <= TOL
    assert _max_diff(part_a[1], iso_a[1]) <= TOL
    assert _max_diff(out["video_only"][0], iso_v) <= TOL
    assert _max_diff(out["audio_only"][1], iso_a) <= TOL


def test_case_contents(tiny_setup):
    config, *_, cases, _ = tiny_setup
    by_name = {case.name: case for case in cases}
    frames, height, width = verify_cases.VIDEO_GRID
    plain = by_name["plain"]
    assert plain.video.positions.shape == (2, 3, frames * height * width, 2)
    assert plain.audio.positions.shape == (2, 1, verify_cases.AUDIO_FRAMES, 2)
    assert plain.video.latent.shape == (2, frames * height * width, config["in_channels"])
    assert plain.audio.latent.shape == (2, verify_cases.AUDIO_FRAMES, config["audio_in_channels"])
    assert plain.video.context_mask.dtype == np.int64 and plain.video.context_mask[1, 0] == 0
    np.testing.assert_array_equal(plain.video.timesteps, np.broadcast_to(plain.video.sigma[:, None], (2, 72)))
    first = by_name["first_frame"].video.timesteps
    assert np.all(first[:, : height * width] == 0)
    assert np.all(first[:, height * width:] == plain.video.sigma[:, None])
    # float32 cases keep exact 1/24 s; bf16 cases quantise video (not audio) positions
    assert plain.video.positions[0, 0, height * width, 0] == np.float32(1 / 24)
    bf16 = {c.name: c for c in verify_cases.make_verify_cases(config, SEED, dtype="bfloat16")}["plain"]
    assert bf16.video.positions[0, 0, height * width, 0] == np.float32(0.041748046875)
    np.testing.assert_array_equal(bf16.audio.positions, plain.audio.positions)
    as_bf16 = torch.from_numpy(bf16.video.latent).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(as_bf16, bf16.video.latent)


def test_save_load_cases_round_trip(tiny_setup, tmp_path):
    cases = tiny_setup[4]
    path = tmp_path / "cases.npz"
    verify_cases.save_cases(cases, path)
    loaded = verify_cases.load_cases(path)
    assert [c.name for c in loaded] == [c.name for c in cases]
    for ref, got in zip(cases, loaded):
        assert ref.perturbations == got.perturbations
        for stream in ("video", "audio"):
            a, b = getattr(ref, stream), getattr(got, stream)
            assert (a is None) == (b is None)
            if a is None:
                continue
            for field in ("latent", "sigma", "timesteps", "positions", "context", "context_mask"):
                x, y = getattr(a, field), getattr(b, field)
                assert (x is None) == (y is None)
                if x is not None:
                    assert x.dtype == y.dtype and x.shape == y.shape
                    np.testing.assert_array_equal(x, y)


def test_x0_matches_velocity(tiny_setup):
    *_, reloaded, cases, out = tiny_setup
    case = next(c for c in cases if c.name == "first_frame")
    x0_video, x0_audio = run_reference_x0(reloaded, case, threads=1)
    v_video, _ = run_reference(reloaded, case, threads=1)
    expected = case.video.latent - v_video * case.video.timesteps[..., None]
    assert _max_diff(x0_video, expected) <= TOL
    tokens = verify_cases.VIDEO_GRID[1] * verify_cases.VIDEO_GRID[2]
    np.testing.assert_array_equal(x0_video[:, :tokens], case.video.latent[:, :tokens])  # clean first frame


@pytest.mark.parametrize("builder", ["19b", "video_only", "audio_only", "bf16"])
def test_variants_round_trip(builder, tmp_path):
    model_type, dtype = "audio_video", "float32"
    config = tiny_configs.tiny_transformer_config()
    if builder == "19b":
        config = tiny_configs.tiny_19b_config()
    elif builder in ("video_only", "audio_only"):
        model_type = builder
    elif builder == "bf16":
        dtype = "bfloat16"
    model = build_random_reference(config, SEED, model_type=model_type)
    path = tmp_path / "model.safetensors"
    save_official_checkpoint(model, config, path)
    reloaded = load_reference(path, dtype=dtype, model_type=model_type)
    cases = {c.name: c for c in verify_cases.make_verify_cases(config, SEED, dtype=dtype)}
    case = {"video_only": cases["video_only"], "audio_only": cases["audio_only"]}.get(model_type, cases["plain"])
    out = run_reference(reloaded, case, dtype, threads=1)
    if dtype == "float32":
        ref = run_reference(model, case, threads=1)
        for a, b in zip(ref, out):
            assert (a is None) == (b is None)
            if a is not None:
                assert _max_diff(a, b) <= TOL
    for value in out:
        assert value is None or np.all(np.isfinite(value))
    if builder == "19b":
        assert any(name.startswith("caption_projection.") for name, _ in reloaded.named_parameters())
        assert case.video.context.shape[-1] == config["caption_channels"]


def test_float64_run_is_float64_throughout_and_restores_ltx_core(tiny_setup):
    """The ground-truth run: float64 parameters, inputs and outputs, float64 timestep table and RoPE grids while it
    runs, ltx-core's own float32-pinned functions back afterwards."""
    from ltx_core.model.transformer import timestep_embedding, transformer_args

    from unityshots_jax.reference.float64_reference import float64_math, sinusoidal_embedding_f64

    _, _, path, _, cases, outputs = tiny_setup
    originals = (timestep_embedding.get_timestep_embedding, transformer_args.generate_freq_grid_np,
                 transformer_args.generate_freq_grid_pytorch)
    model64 = load_reference(path, "float64")
    assert all(p.dtype == torch.float64 for p in model64.parameters())
    video, audio = run_reference(model64, cases[0], "float64")
    assert video.dtype == audio.dtype == np.float64
    for ref32, ref64 in zip(outputs[cases[0].name], (video, audio)):
        err = np.max(np.abs(ref32 - ref64))
        assert 0 < err <= 1e-3 * np.max(np.abs(ref64))  # fp32 rounding, nothing else
    with float64_math():
        assert timestep_embedding.get_timestep_embedding is sinusoidal_embedding_f64
        assert transformer_args.generate_freq_grid_np(10000.0, 3, 32).dtype == torch.float64
    assert (timestep_embedding.get_timestep_embedding, transformer_args.generate_freq_grid_np,
            transformer_args.generate_freq_grid_pytorch) == originals
