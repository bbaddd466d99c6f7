"""Run the tiny model on 8 fake CPU devices under several meshes; print one JSON line per mesh.

Run as a script with XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu (see test_sharding.py).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # configs/

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from helpers.inputs import make_inputs, random_model  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig  # noqa: E402
from unityshots_jax.ltx.transformer import forward  # noqa: E402
from unityshots_jax.reference.tiny_configs import tiny_transformer_config  # noqa: E402
from unityshots_jax import sharding  # noqa: E402
from configs import sharding_rules  # noqa: E402
from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules, use_mesh  # noqa: E402

DEFAULT_RULES = parse_rules(sharding_rules.default())

MESHES = [
    {"data": 2, "fsdp": 2, "context": 2, "tensor": 1},
    {"fsdp": 4, "tensor": 2},
    {"data": 8},
    {"data": 2, "context": 2, "tensor": 2},
]


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    # heads 2 (tensor 2), widths 32 / 16 (fsdp 4), batch 8 (data × fsdp = 8), 4×2×2 = 16 video and 8 audio tokens
    cfg = LTXConfig.from_checkpoint_config(tiny_transformer_config(num_layers=2), "audio_video")
    graphdef, params = random_model(cfg, seed=0)
    video, audio = make_inputs(cfg, batch=8, grid=(4, 2, 2), audio_tokens=8, text_tokens=4, seed=0)
    execution = ExecutionConfig(attention="chunked", attention_chunk=8)
    ref = [np.asarray(x) for x in forward(graphdef, params, video, audio, None, execution)]

    logical = nnx.get_partition_spec(params)
    run_meshes(graphdef, params, logical, video, audio, execution, ref)


def run_meshes(graphdef, params, logical, video, audio, execution, ref) -> None:
    for shape in MESHES:
        mesh = build_mesh(shape)
        specs = jax.tree.map(lambda s: logical_to_spec(tuple(s), DEFAULT_RULES), logical,
                             is_leaf=lambda x: isinstance(x, PartitionSpec))
        shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
        placed = jax.device_put(params, shardings)
        replicated = NamedSharding(mesh, PartitionSpec())
        v_in, a_in = jax.device_put((video, audio), replicated)
        with use_mesh(mesh, DEFAULT_RULES):
            assert sharding.active() is not None  # `constrain` is live inside the context
            out = forward(graphdef, placed, v_in, a_in, None, execution)
        out = [np.asarray(x) for x in out]
        sharded_leaves = sum(
            1 for leaf in jax.tree.leaves(placed) if not leaf.sharding.is_fully_replicated
        )
        layer_axis = placed["blocks"]["attn1"]["to_q"]["kernel"].get_value().sharding.spec
        rel = max(float(np.max(np.abs(o - r)) / np.max(np.abs(r))) for o, r in zip(out, ref))
        print(json.dumps({
            "mesh": shape,
            "rel": rel,
            "shapes": [list(o.shape) for o in out],
            "sharded_leaves": sharded_leaves,
            "leaves": len(jax.tree.leaves(placed)),
            "to_q_spec": [None if a is None else a if isinstance(a, str) else list(a) for a in layer_axis],
            "devices": len(out and placed["blocks"]["attn1"]["to_q"]["kernel"].get_value().sharding.device_set),
        }), flush=True)


if __name__ == "__main__":
    main()
