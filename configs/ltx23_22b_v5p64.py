"""LTX-2.3 22B Shots-Forcing training on TPU v5p-64 (64 chips × 95 GiB): mesh data=1 fsdp=64 context=1 tensor=1, global batch 64.

Planned per-device memory (RESULTS.md, "22B training memory plan"): ~5 GB weights + AdamW + gradients, ~50 GB activations (3 shots, remat full) ≈ 55 GB of 102 GB; up to 5 shots.
    unityshots train --config configs/ltx23_22b_v5p64.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=64, context=1, tensor=1), batch_size=64,
                       distributed=True)
