"""Shared body of the LTX-2.3 22B Shots-Forcing training configs (`configs/ltx23_22b_<target>.py`).

Sizes from `experiments/plan_22b.py` (RESULTS.md, "22B training memory plan"): 1376×768 shots of 16 latent
frames (24×43 grid) with reference + LTM + STM memory = 23,736 video tokens per shot, 3-shot stories, bf16
compute, fp32 master weights + AdamW, remat "full", one story per data-parallel group (global batch =
data × fsdp). The plan's two library fixes are in: the `cudnn` kernel keeps the key-padding bias in its
broadcastable [b, 1, 1, T] shape (it had materialised 33.6 GiB per self-attention at 23.7k tokens), and the per-token
AdaLN tables stay batch-sharded. Every config uses `attention="auto"`: Pallas splash attention on TPU, cuDNN on
GPU (bf16) — neither timed on a device yet.
Longer stories (k > 3 on 64×H100, k > 5 elsewhere) should set `loss.remat_shots=True` (recompute each shot in the
backward) — not yet measured on a device.
"""

import ml_collections

from configs import ltx23_22b, sharding_rules


def make_config(*, mesh: dict, batch_size: int, attention: str = "auto", attention_chunk: int = 512,
                distributed: bool, max_shots: int = 3) -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_type = "audio_video"
    # the codec bundle (unityshots_jax.codecs) the latents and text contexts come from; packaged into the model
    c.codec = "ltx23"
    c.transformer = ltx23_22b.get_config().transformer
    c.execution = ml_collections.ConfigDict(dict(attention=attention, attention_chunk=attention_chunk, remat="full",
                                                 dtype="bfloat16"))
    c.story = ml_collections.ConfigDict(dict(
        max_shots=max_shots, video_frames=16, height=24, width=43, latent_channels=128, audio_frames=126,
        audio_channels=128, text_tokens=1024, ltm_frames=2, stm_frames=4, frame_limit=128, ref_image_frames=1,
        ref_audio_frames=128, fps=24.0,
    ))
    c.loss = ml_collections.ConfigDict(dict(mode_probs=(0.3, 0.5, 0.2), ref_audio_dropout=0.1, loss_on="all",
                                            timesteps="shifted_logit_normal", audio_weight=1.0, remat_shots=False,
                                            caption_dropout=0.0, shift_tokens=0))
    # paper (App. A Table 1): AdamW (0.9, 0.999), 1e-5 backbone, 5e-5 gate MLP, clip 1.0
    c.optimizer = ml_collections.ConfigDict(dict(lr_backbone=1e-5, lr_memory=5e-5, lr_lora=1e-4, warmup_steps=100,
                                                 schedule="cosine", total_steps=20_000, clip_norm=1.0,
                                                 freeze_backbone=False, ema_decay=0.0))
    c.lora = ml_collections.ConfigDict(dict(rank=0, alpha=16.0))
    c.init = ml_collections.ConfigDict(dict(ltx_checkpoint=""))  # set: a converted LTX-2.3 22B directory
    c.data = ml_collections.ConfigDict(dict(source="random", records=1024, seed=0, worker_count=4))  # set: manifest
    c.mesh = ml_collections.ConfigDict(mesh)
    c.distributed = distributed
    c.sharding_rules = sharding_rules.default()  # sharding_rules.fsdp_context(): weights over context too
    c.steps = 20_000
    c.batch_size = batch_size  # global: one story per data × fsdp group
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.log_every = 10
    c.max_nonfinite = 10
    c.seed = 0
    return c
