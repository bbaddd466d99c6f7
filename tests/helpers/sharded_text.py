"""Run the ltx23 text encoder's jitted forward on 8 fake CPU devices under several meshes; one JSON line each.

Usage: sharded_text.py GEMMA_DIR LTX_TEXT_WEIGHTS, with XLA_FLAGS=--xla_force_host_platform_device_count=8
JAX_PLATFORMS=cpu (see test_text_sharded.py).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # configs/

import jax  # noqa: E402
import numpy as np  # noqa: E402

from configs import sharding_rules  # noqa: E402
from unityshots_jax.sharding import build_mesh, parse_rules, use_mesh  # noqa: E402
from unityshots_jax.text import encoder as encoder_module  # noqa: E402

RULES = parse_rules(sharding_rules.default())
MESHES = [{"fsdp": 4, "tensor": 2}, {"data": 2, "fsdp": 2, "tensor": 2}]
CAPTIONS = ["a cat sat on the mat", "the dog ran", "a small red tree", "big blue dog and a cat"]


def main(gemma_dir: str, weights: str) -> None:
    assert jax.device_count() == 8, jax.devices()
    enc = encoder_module.Ltx23TextEncoder(gemma_dir, weights, max_length=128)
    ref = enc.encode(CAPTIONS)
    for shape in MESHES:
        mesh = build_mesh(shape)
        sharded = encoder_module.Ltx23TextEncoder(gemma_dir, weights, max_length=128, mesh=mesh, rules=RULES)
        with use_mesh(mesh, RULES):
            out = sharded.encode(CAPTIONS)
        video, audio = out.video, out.audio
        tower = sharded._tower[1]
        leaves = jax.tree.leaves(tower) + jax.tree.leaves(sharded._emb[1])
        rel = max(float(np.max(np.abs(np.asarray(o) - r)) / np.max(np.abs(r)))
                  for o, r in ((video, ref.video), (audio, ref.audio)))
        q_spec = tower["layers"]["self_attn"]["q_proj"]["kernel"].get_value().sharding.spec
        print(json.dumps({"mesh": shape, "rel": rel, "sharded_leaves": sum(not x.sharding.is_fully_replicated for x in leaves),
                          "leaves": len(leaves), "q_spec": [a if a is None or isinstance(a, str) else list(a) for a in q_spec]}),
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
