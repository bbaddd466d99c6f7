"""LTX-2.3 22B Shots-Forcing training on one host with 8 NVIDIA H200 (141 GB each): mesh data=1 fsdp=4 context=2
tensor=1 (all on NVLink), weights over fsdp × context (`fsdp_context`), global batch 4, cuDNN attention.

Per-device memory read from the compiled step (XLA:CPU forced 8-device mesh, `flash` standing in for cuDNN;
RESULTS.md "22B recipe"): k=3 shots {K3}; k=9 shots {K9}. Step time at 40 % MFU: {T3}.
    unityshots train --config configs/ltx23_22b_8xh200.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=4, context=2, tensor=1), batch_size=4, distributed=False)
