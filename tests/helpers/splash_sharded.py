"""Run with 8 forced CPU devices: the splash kernel per shard (batch over data, heads over tensor, queries over
context, K/V all-gathered over context: `context_parallel.sharded_attention`) on the story model's real masks equals
the dense kernel on one device, output and gradients. One JSON line per attention of a block.
"""

from __future__ import annotations

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # configs/

import jax  # noqa: E402

from helpers.story_masks import attention_calls, output_and_grads, rel  # noqa: E402
from unityshots_jax.ltx.attention_kernels import attention_kernel  # noqa: E402
from unityshots_jax.ltx.context_parallel import sharded_attention  # noqa: E402
from configs import sharding_rules  # noqa: E402
from unityshots_jax.sharding import build_mesh, parse_rules, use_mesh  # noqa: E402

MESH = {"data": 2, "context": 2, "tensor": 2}


def collectives(hlo: str) -> dict[str, int]:
    """Counts of the collective ops in compiled HLO text."""
    names = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
    return {n: len(re.findall(rf"= [^=]*? {n}(?:-start)?\(", hlo)) for n in names}


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    mesh = build_mesh(MESH)
    for name, (q, k, v, mask) in attention_calls().items():
        ref_out, ref_grads = output_and_grads(attention_kernel("dense"), q, k, v, mask)
        with use_mesh(mesh, parse_rules(sharding_rules.default())):
            kernel = sharded_attention(attention_kernel("splash"))
            out, grads = output_and_grads(kernel, q, k, v, mask)
            hlo = jax.jit(lambda q, k, v: kernel(q, k, v, mask)).lower(q, k, v).compile().as_text()
        print(json.dumps({
            "attention": name, "mesh": MESH, "out_rel": rel(out, ref_out),
            "grad_rel": max(rel(g, r) for g, r in zip(grads, ref_grads)), "collectives": collectives(hlo),
            "devices": jax.device_count(),
        }), flush=True)


if __name__ == "__main__":
    main()
