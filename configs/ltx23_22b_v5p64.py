"""LTX-2.3 22B Shots-Forcing training on a TPU v5p-64 slice: 32 chips (v5p-N counts TensorCores, 2 per chip) on
8 hosts, 95 GB HBM each. Mesh data=1 fsdp=8 context=4 tensor=1 (all on the slice's ICI), weights over fsdp × context
(`fsdp_context`), global batch 8 (one story per fsdp group, its 23.7k tokens per shot split 4 ways), splash attention.

Per-device memory read from the compiled step (XLA:CPU forced 32-device mesh, `flash` standing in for splash;
RESULTS.md "22B recipe"): k=3 shots 46.7 GiB peak of 88.5 (53 %); k=9 shots with `--config.story.max_shots=9
--config.loss.remat_shots=True` 28.3 GiB (32 %; plain k=9: 91.0, over). Step time at 40 % MFU: k=3 13.4 s (78.7
PFLOP, 0.60 stories/s), k=9 40.2 s.
Launch (docs/launch.md), on every host of the slice at once:
    gcloud compute tpus tpu-vm ssh $TPU --worker=all --command="cd unityshots-jax && unityshots train \
        --config configs/ltx23_22b_v5p64.py --workdir /gcs/BUCKET/run1 --config.init.ltx_checkpoint=CONVERTED \
        --config.data.source=/gcs/BUCKET/stories/train.manifest.json"
"""

from configs.ltx23_22b_train_common import make_config


def get_config():
    return make_config(mesh=dict(data=1, fsdp=8, context=4, tensor=1), batch_size=8, distributed=True)
