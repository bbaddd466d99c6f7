"""LTX-2.3 22B Shots-Forcing training on TPU v5p-128 (128 chips × 95 GiB): mesh data=2 fsdp=64 context=1 tensor=1, global batch 128.

Planned per-device memory (RESULTS.md, "22B training memory plan"): ~5 GB weights + AdamW + gradients (FSDP over 64, replicated over 2 data groups), ~50 GB activations (3 shots,
remat full) ≈ 55 GB of 102 GB; up to 5 shots.
    unityshots train --config configs/ltx23_22b_v5p128.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=2, fsdp=64, context=1, tensor=1), batch_size=128,
                       distributed=True)
