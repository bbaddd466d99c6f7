"""LTX-2.3 22B Shots-Forcing training on one host with 8 NVIDIA H200 (141 GB each): mesh data=1 fsdp=8 context=1 tensor=1, global batch 8.

Planned per-device memory (RESULTS.md, "22B training memory plan"): ~43 GB weights + AdamW + gradients, ~50 GB activations (3 shots, remat full) ≈ 93 GB of 141 GB; up to 5 shots.
    unityshots train --config configs/ltx23_22b_8xh200.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=8, context=1, tensor=1), batch_size=8,
                       distributed=False)
