"""LTX-2.3 22B Shots-Forcing training on 8 hosts × 8 NVIDIA H100 (80 GB each): mesh data=1 fsdp=16 context=4
tensor=1 — context inside a node (NVLink), fsdp across the 8 nodes (InfiniBand) — weights over fsdp × context
(`fsdp_context`), global batch 16, cuDNN attention.

Per-device memory read from the compiled step (XLA:CPU forced 64-device mesh, `flash` standing in for cuDNN;
RESULTS.md "22B recipe"): k=3 shots 41.4 GiB of 74.5 (56 %);
k=9 with `--config.story.max_shots=9 --config.loss.remat_shots=True` 23.9 GiB (32 %). Step time at 40 % MFU: k=3
6.2 s (157.5 PFLOP), k=9 18.7 s — if FSDP's weight traffic over InfiniBand (~2 s per shot) hides behind compute;
RESULTS.md also sizes `mesh data=8 fsdp=2 context=4` (weights inside a node).
Launch, one process per node (docs/launch.md, SLURM):
    srun --nodes=8 --ntasks-per-node=1 --gpus-per-node=8 env JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7 \
        unityshots train --config configs/ltx23_22b_64xh100.py --workdir /shared/run1 ...
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=16, context=4, tensor=1), batch_size=16, distributed=True)
