"""LTX-2.3 22B Shots-Forcing training on a TPU v5p-128 slice: 64 chips (one 4×4×4 cube) on 16 hosts, 95 GB HBM each.
Mesh data=1 fsdp=16 context=4 tensor=1 (all on ICI), weights over fsdp × context (`fsdp_context`), global batch 16,
splash attention.

Per-device memory read from the compiled step (XLA:CPU forced 64-device mesh, `flash` standing in for splash;
RESULTS.md "22B recipe"): k=3 shots 41.4 GiB peak of 88.5 (47 %); k=9 shots with `--config.story.max_shots=9
--config.loss.remat_shots=True` 23.9 GiB (27 %). Step time at 40 % MFU: k=3 13.4 s (157.5 PFLOP, 1.19 stories/s),
k=9 40.2 s.
Launch: as configs/ltx23_22b_v5p64.py (docs/launch.md), `--worker=all`.
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=16, context=4, tensor=1), batch_size=16, distributed=True)
