"""Which collectives does attention over a context-sharded token axis compile to? (docs/design.md ("TPU: splash attention …"))

One self-attention (q/k/v projections, kernel, output projection) forward + backward on a forced CPU mesh
fsdp 2 × context 4, tokens sharded over context, batch over fsdp; the kernel left to the partitioner (GSPMD) or run
per shard with K/V all-gathered (`context_parallel.sharded_attention`). Prints each collective of the compiled
program with its shape.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu python experiments/context_parallel_hlo.py
"""

from __future__ import annotations

import collections
import re

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from configs import sharding_rules
from unityshots_jax.ltx.attention_kernels import attention_kernel
from unityshots_jax.ltx.attention_mask import AttentionMask
from unityshots_jax.ltx.context_parallel import sharded_attention
from unityshots_jax.sharding import build_mesh, constrain, parse_rules, use_mesh

B, T, H, D = 2, 512, 4, 32
OPS = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")


def program(kernel_of):
    def loss(w, x, valid):
        kernel = kernel_of()
        names = ("activation_batch", "activation_length", "activation_heads", None)
        q, k, v = (constrain((x @ w[i]).reshape(B, T, H, D), names) for i in range(3))
        out = kernel(q, k, v, AttentionMask(valid)).reshape(B, T, H * D) @ w[3]
        return jnp.sum(out ** 2)

    return jax.grad(loss)


def collectives(hlo: str) -> collections.Counter:
    found = collections.Counter()
    for line in hlo.splitlines():
        for op in OPS:
            m = re.search(rf"= (.+?) {op}(?:-start)?\(", line)
            if m:
                found[f"{op} {m.group(1)}"] += 1
    return found


def main() -> None:
    mesh = build_mesh({"fsdp": 2, "context": 4})
    rules = parse_rules(sharding_rules.fsdp_context())
    w = jax.device_put(jnp.ones((4, H * D, H * D)) * 0.01, NamedSharding(mesh, PartitionSpec()))
    x = jax.device_put(jnp.ones((B, T, H * D)), NamedSharding(mesh, PartitionSpec("fsdp", "context")))
    valid = jax.device_put(jnp.ones((B, T)), NamedSharding(mesh, PartitionSpec("fsdp", "context")))
    for kind in ("flash", "dense"):
        for label, kernel_of in (("GSPMD", lambda: attention_kernel(kind, 128)),
                                 ("all-gather K/V", lambda: sharded_attention(attention_kernel(kind, 128)))):
            with use_mesh(mesh, rules):
                hlo = jax.jit(program(kernel_of)).lower(w, x, valid).compile().as_text()
            print(f"{kind:6s} {label:15s}", dict(sorted(collectives(hlo).items())))


if __name__ == "__main__":
    main()
