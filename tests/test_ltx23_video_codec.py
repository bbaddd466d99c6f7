"""The `ltx23` video codec (frames in [0, 1] ↔ latents) over our video VAE: equal to ltx-core's decode / encode
(and tiled decode, and the upsampler) after the [0, 1] ↔ [−1, 1] mapping; its size refusals; and a sharded
decode / encode on 8 forced CPU devices equal to one device (in a subprocess: the device count is fixed when JAX
starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.video_vae_configs import ltx23_tiny, vae_files  # noqa: E402
from unityshots_jax.codecs.base import VideoCodec  # noqa: E402
from unityshots_jax.parity_criterion import assert_parity  # noqa: E402
from unityshots_jax.reference.tiny_media import run_reference, tiling_config, write_tiny_upsampler  # noqa: E402
from unityshots_jax.codecs.ltx23_video import LTX23VideoCodec  # noqa: E402
from unityshots_jax.vae.video.encoder import VideoShapeError  # noqa: E402
from unityshots_jax.vae.video.tiling import Tiling  # noqa: E402
from helpers import training_runs

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "sharded_video_vae.py")


@pytest.fixture(scope="module")
def vae_path(tmp_path_factory):
    return vae_files(tmp_path_factory.mktemp("vae"), {"ltx23": ltx23_tiny()}, seed=21)("ltx23")


def _frames(ref: np.ndarray) -> np.ndarray:
    """ltx-core decoder output `[1, 3, T, H, W]` in [−1, 1] → codec frames `[T, H, W, 3]` in [0, 1]."""
    return np.clip((np.moveaxis(ref[0], 0, -1) + 1.0) / 2.0, 0.0, 1.0)


def _latents(ref: dict) -> tuple[np.ndarray, np.ndarray]:
    """Reference latents `[1, C, F, h, w]` (float32, float64) → codec latents `[F, h, w, C]`."""
    return tuple(np.moveaxis(ref[k][0], 0, -1) for k in ("float32", "float64"))


def test_codec_decode_encode_and_upsample_match_ltx_core(vae_path, tmp_path):
    up = str(tmp_path / "up.safetensors")
    write_tiny_upsampler(up, {"in_channels": 16, "mid_channels": 32, "num_blocks_per_stage": 1}, seed=2)
    codec = LTX23VideoCodec.from_checkpoint(vae_path, upsampler_path=up)
    assert isinstance(codec, VideoCodec)
    assert codec.latent_shape(17, 64, 96) == (3, 2, 3, 16) and codec.frame_count(3) == 17
    latents = np.random.default_rng(0).standard_normal((3, 2, 3, 16)).astype(np.float32)
    ref = run_reference(vae_path, "decoder", np.moveaxis(latents, -1, 0)[None])
    frames = codec.decode(latents)
    assert frames.shape == (17, 64, 96, 3) and frames.min() >= 0 and frames.max() <= 1
    assert_parity("codec decode", frames, _frames(ref["float32"]), _frames(ref["float64"]))

    pixels = np.random.default_rng(1).uniform(0, 1, (9, 64, 96, 3)).astype(np.float32)
    ref = run_reference(vae_path, "encoder", np.moveaxis(2 * pixels - 1, -1, 0)[None])
    assert_parity("codec encode", codec.encode(pixels), *_latents(ref))

    ref = run_reference(up, "upsample_video", np.moveaxis(latents, -1, 0)[None], vae_path=vae_path)
    assert_parity("codec upsample", codec.upsample(latents), *_latents(ref))


def test_codec_tiled_decode_matches_ltx_core(vae_path):
    codec = LTX23VideoCodec.from_checkpoint(vae_path, encoder=False, tiling=Tiling(spatial=(64, 32), temporal=(16, 8)))
    latents = np.random.default_rng(2).standard_normal((4, 2, 3, 16)).astype(np.float32)
    tiling = tiling_config((64, 32), (16, 8))
    ref = run_reference(vae_path, "tiled_decoder", np.moveaxis(latents, -1, 0)[None], tiling=tiling)
    assert_parity("codec tiled decode", codec.decode(latents), _frames(ref["float32"]), _frames(ref["float64"]))
    with pytest.raises(ValueError, match="without the encoder"):
        codec.encode(np.zeros((9, 64, 64, 3), np.float32))


def test_codec_refuses_bad_sizes(vae_path):
    codec = LTX23VideoCodec.from_checkpoint(vae_path)
    with pytest.raises(ValueError, match="split: 'depth'"):
        LTX23VideoCodec.from_checkpoint(vae_path, mesh=_one_device_mesh(), mesh_axis="context", split="depth")
    with pytest.raises(VideoShapeError, match="frames: 12 is not 8k\\+1"):
        codec.encode(np.zeros((12, 64, 64, 3), np.float32))
    with pytest.raises(VideoShapeError, match="width: 80 px"):
        codec.latent_shape(9, 64, 80)
    with pytest.raises(VideoShapeError, match="latents: expected"):
        codec.decode(np.zeros((2, 2, 2, 8), np.float32))


def _one_device_mesh():
    import jax
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()[:1]), ("context",))


def test_sharded_codec_equals_one_device(vae_path):
    env = training_runs.env(devices=8)
    r = subprocess.run([sys.executable, SCRIPT, vae_path], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    row = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    assert row["devices"] == 8
    assert row["decode_w8"]["shape"] == [1, 9, 64, 256, 3] and row["decode_h8"]["shape"] == [1, 9, 256, 96, 3]
    assert row["encode_w256"]["shape"] == [1, 2, 2, 8, 16]
    for name, axis in (("decode_w8", 3), ("decode_h8", 2), ("encode_w256", 3)):
        assert row[name]["rel"] <= 1e-5, row
        # the output really is split over the 8 devices along the chosen axis
        assert row[name]["shards"] == 8 and row[name]["spec"][axis] == "context", row
    assert "input width 3 does not divide by the 8 devices" in row["refused_w3"], row
