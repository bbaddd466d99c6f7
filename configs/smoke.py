"""Smoke training run: a tiny random-init story model on generated stories; trains on a CPU in seconds.

    unityshots train --config configs/smoke.py --workdir /tmp/smoke --config.steps=20 --config.checkpoint_every=5
"""

import ml_collections

from configs import tiny


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_type = "audio_video"
    c.transformer = tiny.get_config().transformer
    c.execution = ml_collections.ConfigDict(dict(attention="flash", attention_chunk=128, remat="none", dtype="float32"))
    c.story = ml_collections.ConfigDict(dict(
        max_shots=4, video_frames=6, height=2, width=3, latent_channels=16, audio_frames=8, audio_channels=16,
        text_tokens=4, ltm_frames=2, stm_frames=4, frame_limit=32, ref_image_frames=1, ref_audio_frames=4,
        fps=24.0, gate=ml_collections.ConfigDict(dict(rho_hidden=32)),
    ))
    c.loss = ml_collections.ConfigDict(dict(mode_probs=(0.3, 0.5, 0.2), ref_audio_dropout=0.1, loss_on="all",
                                            timesteps="shifted_logit_normal", audio_weight=1.0, remat_shots=False))
    c.optimizer = ml_collections.ConfigDict(dict(lr_backbone=1e-3, lr_memory=5e-3, lr_lora=1e-3, warmup_steps=2,
                                                 schedule="cosine", total_steps=1000, clip_norm=1.0,
                                                 freeze_backbone=False, ema_decay=0.0))
    c.lora = ml_collections.ConfigDict(dict(rank=0, alpha=16.0))
    c.init = ml_collections.ConfigDict(dict(ltx_checkpoint=""))  # a converted LTX directory, or "" = random init
    # data.source: "random" (generated stories) or the path of an ArrayRecord manifest / shard prefix
    c.data = ml_collections.ConfigDict(dict(source="random", records=64, seed=0, worker_count=0))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, context=1, tensor=1))
    c.distributed = False
    c.sharding_rules = "default"  # or "fsdp_context"
    c.steps = 20
    c.batch_size = 2  # global
    c.checkpoint_every = 10
    c.keep_checkpoints = 3
    c.log_every = 1
    c.max_nonfinite = 10
    c.seed = 0
    return c
