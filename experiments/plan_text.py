"""Memory plan of LTX-2.3 text encoding (Gemma-3 12B tower + FeatureExtractorV2 + connectors), nothing allocated.

    python experiments/plan_text.py                 # 1 device and an 8-device fsdp mesh, batch 1 and 8, bf16
    python experiments/plan_text.py --devices 8 --batch 8

For each case a fresh subprocess forces N CPU devices, builds the abstract Gemma-3 12B tower (the LTX config,
`GEMMA3_12B_LTX_TEXT`) and the abstract 2.3 text embeddings (the 22B config's connectors), shards the parameters
by their logical axes (`configs/sharding_rules.default()`: embed → fsdp, heads/mlp → tensor), lowers and compiles the encoder's jitted
forward for `[batch, 1024]` tokens and reports per device: parameter bytes (shard shapes) and XLA's
`memory_analysis()` (argument, output, temp). It also prints the 22B transformer's parameter bytes, to decide
whether the encoder can stay resident next to the story model. XLA:CPU buffer assignment is not XLA:GPU's; read
temps as an estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GiB = 1024**3
CASES = [(1, 1), (1, 8), (8, 1), (8, 8)]  # (devices, batch)


def worker(devices: int, batch: int, dtype: str) -> dict:
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, ROOT)
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from unityshots_jax.ltx.config import LTXConfig
    from unityshots_jax.ltx.transformer import abstract_model
    from unityshots_jax.reference.tiny_configs import LTX23_TRANSFORMER_CONFIG
    from unityshots_jax import sharding
    from configs import sharding_rules
    from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules

    DEFAULT_RULES = parse_rules(sharding_rules.default())
    from unityshots_jax.text.embeddings import TextEmbeddings, projection_configs
    from unityshots_jax.text.encoder import _encode
    from unityshots_jax.text.gemma3.config import GEMMA3_12B_LTX_TEXT, config_from_dict
    from unityshots_jax.text.gemma3.model import abstract_tower

    mesh = build_mesh({"fsdp": devices})
    cfg = config_from_dict(GEMMA3_12B_LTX_TEXT)
    video, audio = projection_configs(LTX23_TRANSFORMER_CONFIG, "22B config")
    with nnx.use_eager_sharding(False):
        emb = nnx.eval_shape(lambda: TextEmbeddings(cfg.hidden_size, cfg.num_states, video, audio, nnx.Rngs(0)))

    def abstract(module):
        graphdef, params = nnx.split(module)
        specs = nnx.get_partition_spec(params)
        shard = jax.tree.map(lambda s: NamedSharding(mesh, logical_to_spec(tuple(s), DEFAULT_RULES)), specs,
                             is_leaf=lambda x: isinstance(x, PartitionSpec))
        params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, jnp.dtype(dtype), sharding=s), params, shard)
        per_device = sum(int(np.prod(s.shard_shape(a.shape))) * jnp.dtype(dtype).itemsize
                         for a, s in zip(jax.tree.leaves(params), jax.tree.leaves(shard)))
        return graphdef, params, per_device, sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))

    tower_def, tower_params, tower_bytes, tower_count = abstract(abstract_tower(cfg))
    emb_def, emb_params, emb_bytes, emb_count = abstract(emb)
    # captions split over the devices when they divide (data parallel over fsdp, weights gathered per layer)
    batch_spec = PartitionSpec("fsdp") if batch % devices == 0 else PartitionSpec()
    tokens = jax.ShapeDtypeStruct((batch, 1024), jnp.int32, sharding=NamedSharding(mesh, batch_spec))
    with sharding.use_mesh(mesh, DEFAULT_RULES):  # activation constraints live
        compiled = _encode.lower(tower_def, tower_params, emb_def, emb_params, tokens, tokens, dtype).compile()
    mem = compiled.memory_analysis()
    ltx = abstract_model(LTXConfig.from_checkpoint_config(LTX23_TRANSFORMER_CONFIG, "audio_video"))
    ltx_count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(nnx.state(ltx, nnx.Param)))
    return {
        "devices": devices, "batch": batch, "dtype": dtype,
        "gemma_params": tower_count, "text_embeddings_params": emb_count, "transformer_22b_params": ltx_count,
        "gemma_GiB_per_device": tower_bytes / GiB, "embeddings_GiB_per_device": emb_bytes / GiB,
        "transformer_bf16_GiB_total": ltx_count * 2 / GiB,
        "argument_GiB": mem.argument_size_in_bytes / GiB, "output_GiB": mem.output_size_in_bytes / GiB,
        "temp_GiB": mem.temp_size_in_bytes / GiB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.devices, args.batch, args.dtype)), flush=True)
        return
    cases = [(args.devices, args.batch)] if args.devices else CASES
    for devices, batch in cases:
        r = subprocess.run([sys.executable, __file__, "--worker", "--devices", str(devices), "--batch", str(batch),
                            "--dtype", args.dtype], capture_output=True, text=True)
        line = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else json.dumps(
            {"devices": devices, "batch": batch, "error": r.stderr[-800:]})
        print(line, flush=True)


if __name__ == "__main__":
    main()
