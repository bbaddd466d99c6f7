"""The toy-world UnityShots: the model shipped as `unityshots generate`'s default, trained on a CPU.

    unityshots train --config configs/toy_world.py --workdir runs/toy_world
    unityshots package runs/toy_world unityshots_jax/assets/toy_world

A 4-layer LTX-2.3-shaped audio-video transformer (video 4 heads × 16, audio 4 × 8; ~0.5 M parameters) on the
toy world (`unityshots_jax/toy_world/`): 24 × 24 px video at 8 fps and 16 kHz audio through the toy codecs
(6 × 6 × 48 video latents, 2 per second; 16-channel audio latents, 20 per second), shots of 1–2 s, stories of
3–4 shots in training (generation runs up to 9: the memory is the same constant-size state). Positions are
scaled for a 24 px frame (`positional_embedding_max_pos` 20 s × 32 px × 32 px).
"""

import ml_collections

from configs import ltx23_22b_train_common, tiny


def get_config() -> ml_collections.ConfigDict:
    c = ltx23_22b_train_common.make_config(
        mesh=dict(data=-1, fsdp=1, context=1, tensor=1), batch_size=8, attention="auto", attention_chunk=128,
        distributed=False, max_shots=4,
    )
    c.codec = "toy_world"  # toy video / audio codecs + hash text encoder (unityshots_jax/toy_world/codec_bundle.py)
    c.transformer = tiny.get_config().transformer
    c.transformer.update(
        num_layers=4, num_attention_heads=4, attention_head_dim=16, cross_attention_dim=64,
        audio_num_attention_heads=4, audio_attention_head_dim=8, audio_cross_attention_dim=32,
        in_channels=48, out_channels=48, audio_in_channels=16, audio_out_channels=16,
        positional_embedding_max_pos=[20, 32, 32], audio_positional_embedding_max_pos=[20],
    )
    c.execution.update(remat="none", dtype="float32")
    c.story.update(
        video_frames=4, height=6, width=6, latent_channels=48, audio_frames=40, audio_channels=16, text_tokens=32,
        ltm_frames=1, stm_frames=2, frame_limit=32, ref_image_frames=1, ref_audio_frames=20, fps=8.0,
        temporal_scale=4, spatial_scale=4, audio_hop_seconds=0.0125, audio_downsample=4,
    )
    c.story.gate = ml_collections.ConfigDict(dict(rho_hidden=64))
    # caption_dropout: shots trained on the empty text, so generation can use classifier-free guidance
    c.loss.update(mode_probs=(0.6, 0.2, 0.2), ref_audio_dropout=0.1, caption_dropout=0.1)
    c.optimizer.update(lr_backbone=2e-3, lr_memory=2e-3, lr_lora=1e-3, warmup_steps=50, total_steps=1200,
                       clip_norm=1.0, ema_decay=0.99)
    # data.source "toy_world": stories generated on demand (record i from seed and i)
    c.data.update(source="toy_world", records=100_000, seed=0, worker_count=1)  # rendering overlaps the step
    c.steps = 1200
    c.checkpoint_every = 250
    c.keep_checkpoints = 2
    c.log_every = 10
    c.seed = 0
    return c
