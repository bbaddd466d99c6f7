"""LTX-2.3 22B Shots-Forcing training on one host with 8 NVIDIA H200 (141 GB each): mesh data=1 fsdp=4 context=2
tensor=1 (all on NVLink), weights over fsdp × context (`fsdp_context`), global batch 4, cuDNN attention, each shot
recomputed in the backward (`loss.remat_shots=True`: without it k=3 needs 87 % of HBM by the compiled figure).

Per-device memory read from the compiled step (XLA:CPU forced 8-device mesh, `flash` standing in for cuDNN;
RESULTS.md "22B recipe"): k=3 without remat_shots 114.1 GiB
of 131.3 (87 %, over the 85 % margin); k=9 (`--config.story.max_shots=9`) with remat_shots 76.7 GiB (58 %), so k=3
with it is below that. Step time at 40 % MFU: k=3 12.4 s (39.4 PFLOP), k=9 37.3 s.
    unityshots train --config configs/ltx23_22b_8xh200.py --workdir DIR --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=MANIFEST
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    c = make_config(mesh=dict(data=1, fsdp=4, context=2, tensor=1), batch_size=4, distributed=False)
    c.loss.remat_shots = True
    return c
