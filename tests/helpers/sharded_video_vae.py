"""Decode and encode a tiny VAE on 8 fake CPU devices, height or width split over a mesh axis, and on one device;
print one JSON line with the relative differences and the output shardings.

Run as a script with XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu, argv[1] = VAE file
(see test_ltx23_video_codec.py).
"""

from __future__ import annotations

import json
import sys

import jax  # noqa: E402
import numpy as np  # noqa: E402

from unityshots_jax.codecs.ltx23_video import jit_module  # noqa: E402
from unityshots_jax.sharding import build_mesh  # noqa: E402
from unityshots_jax.vae.video.keys import load_video_decoder, load_video_encoder  # noqa: E402


def main(path: str) -> None:
    mesh = build_mesh({"context": 8})
    dec, enc = load_video_decoder(path), load_video_encoder(path)
    rng = np.random.default_rng(0)
    row = {"devices": len(jax.devices())}
    # latents 2×2×8 split along the width, 2×8×3 along the height (a width of 3 does not divide by 8)
    for name, module, split, x in (
        ("decode_w8", dec, "width", rng.standard_normal((1, 2, 2, 8, 16)).astype(np.float32)),
        ("decode_h8", dec, "height", rng.standard_normal((1, 2, 8, 3, 16)).astype(np.float32)),
        ("encode_w256", enc, "width", rng.uniform(-1, 1, (1, 9, 64, 256, 3)).astype(np.float32)),
    ):
        one = np.asarray(jit_module(module)(x))
        out = jit_module(module, mesh, "context", split)(x)
        many = np.asarray(out)
        row[name] = {
            "rel": float(np.max(np.abs(many - one)) / np.max(np.abs(one))),
            "shape": list(many.shape),
            "spec": [None if a is None else str(a) for a in getattr(out.sharding, "spec", ())],
            "shards": len(out.addressable_shards),
        }
    try:  # a width of 3 latents does not divide over 8 devices: refused, naming the axis
        jit_module(dec, mesh, "context", "width")(rng.standard_normal((1, 2, 2, 3, 16)).astype(np.float32))
        row["refused_w3"] = None
    except ValueError as e:
        row["refused_w3"] = str(e)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1])
