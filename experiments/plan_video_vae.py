"""Memory plan for the real LTX-2.3 video VAE on one device, without allocating any weight.

    python experiments/plan_video_vae.py            # 5 s 1376×768 shot: latent grid 16×24×43, 121 frames

Builds the full-size decoder / encoder abstractly from the 2.3 `vae` config (`nnx.eval_shape`, bf16 parameters),
compiles the jitted forward for `ShapeDtypeStruct` inputs and prints XLA's `memory_analysis()` per case: the
untiled decode and encode of the whole shot, and the largest tile of ltx-core's default tiling (512 px / 64
frames, overlaps 64 px / 24 frames; tiles from `vae.video.tiling.decode_plan` / `encode_plan`), which is what a
tiled decode holds on the device at once. peak ≈ argument + output + temp.

Caveat: compiled for the local backend (XLA:CPU unless a GPU is present); XLA:CPU's buffer assignment and fusion
are not XLA:GPU's (it may keep bf16 intermediates in f32), so read the CPU figures as an upper-bound estimate.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.video.config import LTX23_VAE, vae_config_from_checkpoint
from unityshots_jax.vae.video.decoder import VideoDecoder
from unityshots_jax.vae.video.encoder import VideoEncoder
from unityshots_jax.vae.video.tiling import Tiling, decode_plan, encode_plan

GiB = 1024**3
GRID = (16, 24, 43)  # latent frames, height, width of a 5 s 1376×768 shot


def plan(cls, cfg, shape: tuple[int, ...]) -> dict:
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(lambda: cls(cfg, nnx.Rngs(0), jnp.bfloat16))
    graphdef, state = nnx.split(abstract)
    f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    start = time.time()
    m = f.lower(state, jax.ShapeDtypeStruct(shape, jnp.bfloat16)).compile().memory_analysis()
    row = {"input": list(shape), "compile_s": round(time.time() - start, 1),
           "argument_gib": m.argument_size_in_bytes / GiB, "output_gib": m.output_size_in_bytes / GiB,
           "temp_gib": m.temp_size_in_bytes / GiB}
    row["peak_gib"] = row["argument_gib"] + row["output_gib"] + row["temp_gib"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}


def largest(tiles) -> tuple[int, int, int]:
    return max((tuple(a.src.stop - a.src.start for a in tile) for tile in tiles), key=lambda s: s[0] * s[1] * s[2])


def main() -> None:
    cfg = vae_config_from_checkpoint({"vae": LTX23_VAE})
    frames, h, w = GRID
    pixels = (8 * (frames - 1) + 1, 32 * h, 32 * w)
    tiling = Tiling.default()
    cases = {
        "decode whole shot": (VideoDecoder, (1, *GRID, 128)),
        "decode largest default tile": (VideoDecoder, (1, *largest(decode_plan(GRID, tiling, 8, 32)), 128)),
        "encode whole shot": (VideoEncoder, (1, *pixels, 3)),
        "encode largest default tile": (VideoEncoder, (1, *largest(encode_plan(pixels, tiling, 8, 32)), 3)),
    }
    print(json.dumps({"backend": jax.default_backend(), "device": str(jax.devices()[0])}))
    for name, (cls, shape) in cases.items():
        print(json.dumps({"case": name, **plan(cls, cfg, shape)}), flush=True)


if __name__ == "__main__":
    main()
