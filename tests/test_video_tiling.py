"""Tiled decode / encode against ltx-core 1.0.0's `tiled_decode` / `tiled_encode` with the same tiling settings
(same tile plan, blend masks and accumulation), on tiny VAEs loaded by our loader; and the tiling refusals."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from helpers.video_vae_configs import ltx23_tiny, other_layout, vae_files  # noqa: E402
from unityshots_jax.parity_criterion import assert_parity  # noqa: E402
from unityshots_jax.reference.tiny_media import run_reference, tiling_config  # noqa: E402
from unityshots_jax.vae.video.keys import load_video_decoder, load_video_encoder  # noqa: E402
from unityshots_jax.vae.video.tiling import Tiling, TilingError, decode_plan, tiled_decode, tiled_encode  # noqa: E402

CONFIGS = {"ltx23": ltx23_tiny(), "other": other_layout()}
run = nnx.jit(lambda model, x: model(x))


@pytest.fixture(scope="module")
def vae_file(tmp_path_factory):
    return vae_files(tmp_path_factory.mktemp("vae"), CONFIGS, seed=11)


def _ours_decode(path: str, latent_cf: np.ndarray, tiling: Tiling) -> np.ndarray:
    dec = load_video_decoder(path)
    chunks = list(tiled_decode(lambda x: run(dec, jnp.asarray(x)), np.moveaxis(latent_cf, 1, -1), tiling))
    return np.moveaxis(np.concatenate(chunks, axis=1), -1, 1)


# (config, latent grid F×h×w, spatial (tile, overlap) px, temporal (tile, overlap) frames)
DECODE = [
    ("ltx23", (5, 3, 4), (64, 32), (24, 8)),
    ("other", (4, 4, 3), (96, 32), (16, 8)),  # causal decoder, reflect padding; tiles scaled to a tall grid
]


@pytest.mark.parametrize("name,grid,spatial,temporal", DECODE, ids=[d[0] for d in DECODE])
def test_tiled_decode_matches_ltx_core(vae_file, name, grid, spatial, temporal):
    path = vae_file(name)
    latent = np.random.default_rng(5).standard_normal((1, CONFIGS[name]["latent_channels"], *grid)).astype(np.float32)
    tiling = Tiling(spatial=spatial, temporal=temporal)
    plan = decode_plan(grid, tiling, 8, 32)
    spans = [{(a.src.start, a.src.stop) for a in axis} for axis in zip(*plan)]
    assert len(spans[0]) > 1 and len(spans[1]) * len(spans[2]) > 2  # really tiled in time and space
    ref = run_reference(path, "tiled_decoder", latent, tiling=tiling_config(spatial, temporal))
    ours = _ours_decode(path, latent, tiling)
    assert ours.shape == ref["float32"].shape == (1, 3, 8 * (grid[0] - 1) + 1, 32 * grid[1], 32 * grid[2])
    assert_parity(f"tiled decode[{name}]", ours, ref["float32"], ref["float64"])


def test_spatial_only_tiling(vae_file):
    """ltx-core 1.0.0's `tiled_decode` fails without a temporal config (a None slice end); ours decodes the whole
    clip as one temporal tile, which is what ltx-core returns with a temporal tile longer than the clip."""
    path = vae_file("ltx23")
    latent = np.random.default_rng(6).standard_normal((1, 16, 2, 2, 4)).astype(np.float32)
    ref = run_reference(path, "tiled_decoder", latent, tiling=tiling_config((64, 32), (64, 24)))
    ours = _ours_decode(path, latent, Tiling(spatial=(64, 32)))
    assert_parity("spatial-only tiled decode", ours, ref["float32"], ref["float64"])


# (config, video T×H×W, spatial (tile, overlap) px, temporal (tile, overlap) frames)
ENCODE = [
    ("ltx23", (33, 128, 96), (96, 64), (24, 16)),
    ("other", (25, 96, 160), (128, 32), (24, 8)),  # overlaps below the minimum: raised to 64 px / 16 frames
]


@pytest.mark.parametrize("name,size,spatial,temporal", ENCODE, ids=[e[0] for e in ENCODE])
def test_tiled_encode_matches_ltx_core(vae_file, name, size, spatial, temporal):
    path = vae_file(name)
    video = np.random.default_rng(7).uniform(-1, 1, (1, 3, *size)).astype(np.float32)
    ref = run_reference(path, "tiled_encoder", video, tiling=tiling_config(spatial, temporal))
    enc = load_video_encoder(path)
    channels = CONFIGS[name]["latent_channels"]
    ours = tiled_encode(lambda x: run(enc, jnp.asarray(x)), np.moveaxis(video, 1, -1), Tiling(spatial, temporal), channels)
    assert_parity(f"tiled encode[{name}]", np.moveaxis(ours, -1, 1), ref["float32"], ref["float64"])


@pytest.mark.parametrize("kwargs,message", [
    ({"spatial": (48, 0)}, "tiling.spatial tile: 48"),
    ({"spatial": (96, 40)}, "tiling.spatial overlap: 40"),
    ({"temporal": (20, 8)}, "tiling.temporal tile: 20"),
    ({"temporal": (16, 16)}, "tiling.temporal overlap: 16"),
])
def test_bad_tiling_is_refused(kwargs, message):
    with pytest.raises(TilingError, match=message):
        Tiling(**kwargs)


def test_encode_overlap_minimum_leaves_no_room():
    """Encoding raises the overlap to 16 frames / 64 px (as ltx-core does); a tile no larger is refused."""
    with pytest.raises(TilingError, match="tiling.temporal tile: 16 frames"):
        tiled_encode(lambda x: x, np.zeros((1, 33, 64, 64, 3), np.float32), Tiling(temporal=(16, 8)), 16)
