"""Latent upsampler parity with ltx-core 1.0.0 (bare model and `upsample_video`), loaded by our loader from a
tiny file in the official upscaler layout; and its refusals. "x2" is the official layout shrunk; the others
(per-frame 2-D model, temporal and spatio-temporal upsampling, other widths) were not tuned on."""

from __future__ import annotations


import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from helpers.checkpoints import rewrite, with_config  # noqa: E402
from helpers.video_vae_configs import ltx23_tiny, other_layout  # noqa: E402
from unityshots_jax.checkpoint.safetensors_io import CheckpointError  # noqa: E402
from unityshots_jax.parity_criterion import assert_parity  # noqa: E402
from unityshots_jax.reference.tiny_media import run_reference, write_tiny_upsampler, write_tiny_vae  # noqa: E402
from unityshots_jax.vae.upsampler import UpsamplerConfigError, load_upsampler, upsample_video  # noqa: E402
from unityshots_jax.vae.video.keys import load_video_encoder  # noqa: E402

CONFIGS = {
    "x2": {"in_channels": 16, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3, "spatial_upsample": True,
           "temporal_upsample": False, "spatial_scale": 2.0, "rational_resampler": False},
    "per-frame-2d": {"in_channels": 8, "mid_channels": 64, "num_blocks_per_stage": 2, "dims": 2},
    "spatiotemporal": {"in_channels": 16, "mid_channels": 32, "num_blocks_per_stage": 1, "temporal_upsample": True},
    "temporal": {"in_channels": 8, "mid_channels": 32, "num_blocks_per_stage": 2, "spatial_upsample": False,
                 "temporal_upsample": True},
}
GRIDS = {"x2": (3, 2, 3), "per-frame-2d": (2, 3, 2), "spatiotemporal": (2, 2, 3), "temporal": (3, 3, 2)}
run = nnx.jit(lambda model, x: model(x))


def _file(tmp_path, name: str) -> str:
    path = str(tmp_path / f"{name}.safetensors")
    write_tiny_upsampler(path, CONFIGS[name], seed=7)
    return path


@pytest.mark.parametrize("name", list(CONFIGS))
def test_upsampler_parity(tmp_path, name):
    path = _file(tmp_path, name)
    shape = (1, CONFIGS[name]["in_channels"], *GRIDS[name])
    latent = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ref = run_reference(path, "upsampler", latent)
    ours = np.moveaxis(np.asarray(run(load_upsampler(path), jnp.asarray(np.moveaxis(latent, 1, -1)))), -1, 1)
    assert ours.shape == ref["float32"].shape
    assert_parity(f"upsampler[{name}]", ours, ref["float32"], ref["float64"])


@pytest.mark.parametrize("vae,name", [("ltx23", "x2"), ("other", "temporal")])
def test_upsample_video_parity(tmp_path, vae, name):
    """un-normalise with the VAE encoder's statistics → upsample → normalise, as ltx-core's `upsample_video`."""
    vae_path = str(tmp_path / "vae.safetensors")
    write_tiny_vae(vae_path, {"ltx23": ltx23_tiny, "other": other_layout}[vae](), seed=3)
    path = _file(tmp_path, name)
    shape = (1, CONFIGS[name]["in_channels"], 2, 3, 2)
    latent = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    ref = run_reference(path, "upsample_video", latent, vae_path=vae_path)
    stats = load_video_encoder(vae_path).per_channel_statistics
    ours = nnx.jit(upsample_video)(jnp.asarray(np.moveaxis(latent, 1, -1)), stats, load_upsampler(path))
    assert_parity(f"upsample_video[{name}]", np.moveaxis(np.asarray(ours), -1, 1), ref["float32"], ref["float64"])


@pytest.mark.parametrize("change,message", [
    ({"rational_resampler": True, "spatial_scale": 1.5}, "rational_resampler"),
    ({"mid_channels": 48}, "mid_channels: 48"),
    ({"dims": 1}, "dims"),
    ({"spatial_upsample": False}, "spatial_upsample / temporal_upsample"),
])
def test_unsupported_config_is_refused(tmp_path, change, message):
    bad = with_config(_file(tmp_path, "x2"), str(tmp_path / "bad.safetensors"), lambda c: {**c, **change})
    with pytest.raises(UpsamplerConfigError, match=message):
        load_upsampler(bad)


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    src = _file(tmp_path, "x2")
    key = "upsampler.0.weight"
    with pytest.raises(CheckpointError, match=f"'{key}' is missing"):
        load_upsampler(rewrite(src, str(tmp_path / "a.safetensors"), drop=(key,)))
    key = "res_blocks.1.conv1.weight"  # a second block the config (1 block per stage) does not have
    bad = rewrite(src, str(tmp_path / "b.safetensors"), add={key: np.zeros((32, 32, 3, 3, 3), np.float32)})
    with pytest.raises(CheckpointError, match=f"'{key}'.*not used"):
        load_upsampler(bad)
    # a file without a config gets ltx-core's defaults (in 128, mid 512): the tiny tensors then mismatch by name
    with pytest.raises(CheckpointError, match="has shape \\[16\\], the config needs \\[128\\]"):
        load_upsampler(rewrite(src, str(tmp_path / "c.safetensors"), metadata={}))
