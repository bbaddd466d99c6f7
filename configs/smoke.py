"""Smoke training run: a tiny random-init story model on generated stories; trains on a CPU in seconds.

    unityshots train --config configs/smoke.py --workdir /tmp/smoke --config.steps=20 --config.checkpoint_every=5

The same structure as the real configs (`configs/ltx23_22b_train_common.py`), with the tiny transformer of
`configs/tiny.py`, a 4-shot story of 6 × 2 × 3 latent frames, fp32 and fast learning rates.
"""

import ml_collections

from configs import ltx23_22b_train_common, tiny


def get_config() -> ml_collections.ConfigDict:
    c = ltx23_22b_train_common.make_config(
        mesh=dict(data=-1, fsdp=1, context=1, tensor=1), batch_size=2, attention="auto", attention_chunk=128,
        distributed=False, max_shots=4,
    )
    c.transformer = tiny.get_config().transformer
    c.execution.update(remat="none", dtype="float32")
    c.story.update(
        video_frames=6, height=2, width=3, latent_channels=16, audio_frames=8, audio_channels=16, text_tokens=4,
        frame_limit=32, ref_audio_frames=4,
    )
    c.story.gate = ml_collections.ConfigDict(dict(rho_hidden=32))
    c.optimizer.update(lr_backbone=1e-3, lr_memory=5e-3, lr_lora=1e-3, warmup_steps=2, total_steps=1000)
    # data.source: "random" (generated stories) or the path of an ArrayRecord manifest / shard prefix
    c.data.update(records=64, worker_count=0)
    c.steps = 20
    c.checkpoint_every = 10
    c.log_every = 1
    return c
