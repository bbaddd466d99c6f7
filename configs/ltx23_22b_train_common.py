"""Shared body of the LTX-2.3 22B Shots-Forcing training configs (`configs/ltx23_22b_<target>.py`).

Sizes from `experiments/plan_22b.py` (RESULTS.md, "22B recipe: v5p and GPU layouts"): 1376×768 shots of 16 latent
frames (24×43 grid) with reference + LTM + STM memory = 23,736 video tokens per shot, 3-shot stories (9 fit too:
`--config.story.max_shots=9`; shorter stories are padded to max_shots and pay its compute), bf16 compute, fp32 master
weights + AdamW, remat "full", one story per (data × fsdp) group, each story's tokens split over `context`
(context-parallel attention, ltx/context_parallel.py) with the weights sharded over fsdp × context
(`sharding_rules="fsdp_context"`). Every config uses `attention="auto"`: Pallas splash attention on TPU, cuDNN on
GPU (bf16) — neither timed on a device yet.

Multi-host layout (docs/launch.md): `build_mesh` lays `jax.devices()` (process-major) out as data × fsdp × context ×
tensor, so the innermost axes (context, tensor) stay inside a host or a slice's ICI neighbourhood and fsdp / data
span hosts. On a single TPU slice (v5p-64, v5p-128) every axis is on ICI. Several slices (multislice) would put
`data` over DCN (one data group per slice) and keep fsdp / context inside each slice; on GPU clusters context ≤ 8
stays on NVLink inside a node and fsdp crosses nodes over InfiniBand.
"""

import ml_collections

from configs import ltx23_22b, sharding_rules


def make_config(*, mesh: dict, batch_size: int, attention: str = "auto", attention_chunk: int = 512,
                distributed: bool, max_shots: int = 3, rules: str = "fsdp_context") -> ml_collections.ConfigDict:
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
    # jax.distributed.initialize arguments ("" / -1: from JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
    # JAX_PROCESS_ID, else JAX's cluster detection: Cloud TPU VMs, SLURM; docs/launch.md)
    c.distributed_coordinator = ""
    c.distributed_num_processes = -1
    c.distributed_process_id = -1
    # "fsdp_context": weights over fsdp × context (configs/sharding_rules.py); "default": over fsdp only
    c.sharding_rules = getattr(sharding_rules, rules)()
    c.steps = 20_000
    c.batch_size = batch_size  # global: one story per data × fsdp group
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.log_every = 10
    c.max_nonfinite = 10
    c.seed = 0
    return c
