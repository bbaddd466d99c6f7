"""LTX-2.3 22B Shots-Forcing training on 8 hosts × 8 NVIDIA H100 (80 GB each): mesh data=1 fsdp=64 context=1 tensor=1, global batch 64.

Planned per-device memory (RESULTS.md, "22B training memory plan"): ~5 GB weights + AdamW + gradients, ~50 GB activations (3 shots, remat full) ≈ 55 GB of 80 GB; 3 shots max.
    unityshots train --config configs/ltx23_22b_64xh100.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=64, context=1, tensor=1), batch_size=64,
                       distributed=True)
