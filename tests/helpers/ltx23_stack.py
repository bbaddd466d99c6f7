"""A tiny official-layout LTX-2.3 stack for the codec tests: one file with transformer, video VAE, audio VAE,
vocoder + BWE and text connectors, a tiny Gemma-3 directory and a ×2 upsampler file (reference builders)."""

from __future__ import annotations

import os

from helpers.video_vae_configs import ltx23_tiny
from unityshots_jax.codecs.base import CodecRequest

WORDS = ["a", "meadow", "in", "bright", "light", "pip", "is", "red", "striped", "square", "wide", "shot", "walks", "right", "close", "up", "stands", "still", "jumps", "speaking", "ba", "lo", "mi", "ko", "ta", "ne", ".", "-"]
VIDEO_C, AUDIO_C = 16, 32  # video latent channels; audio tokens = z_channels 2 × 16 latent mel bins
GRID = (3, 2, 3, VIDEO_C)  # 64 × 96 px frames
TOKENS = 128


def build_ltx23_stack(root: str) -> tuple[str, str, str, CodecRequest]:
    """(checkpoint path, gemma dir, upsampler path, the request for them), written under `root`."""
    from unityshots_jax.reference import tiny_audio, tiny_media, tiny_stack, tiny_text
    from unityshots_jax.reference.tiny_configs import tiny_transformer_config

    path, gemma = os.path.join(root, "ltx-2.3-tiny.safetensors"), os.path.join(root, "gemma")
    audio = {"audio_vae": tiny_audio.tiny_audio_vae(), "vocoder": tiny_audio.tiny_vocoder_bwe()}
    tiny_stack.write_full_stack(
        path, gemma, transformer=tiny_transformer_config(in_channels=VIDEO_C, audio_channels=AUDIO_C),
        vae=ltx23_tiny(latent_channels=VIDEO_C), audio=audio, words=WORDS,
        gemma=tiny_text.tiny_gemma_config(layers=2, hidden=32, heads=4, kv_heads=2, head_dim=8, window=5))
    upsampler = os.path.join(root, "upsampler.safetensors")
    tiny_media.write_tiny_upsampler(upsampler, {"in_channels": VIDEO_C, "mid_channels": 32,
                                                "num_blocks_per_stage": 1, "dims": 3})
    request = CodecRequest(GRID, 32, 16, TOKENS, weights=path, text_encoder_dir=gemma, upsampler=upsampler)
    return path, gemma, upsampler, request


PIPELINE_C = 128  # ltx-pipelines' latent tools assume 128 video channels and 8 × 16 audio (patchified 128)
PIPELINE_GEMMA = (32, 3)  # (width, hidden states) of the pipeline stack's tiny Gemma


def pipeline_vae() -> dict:
    """The tiny 2.3 VAE with 128 latent channels; the encoder keeps 128 channels throughout (the official
    encoder doubles them at three compress blocks, which at 128 latent channels would make a 590 MB file)."""
    vae = ltx23_tiny(latent_channels=PIPELINE_C)
    vae["encoder_blocks"] = [[name, {"multiplier": 1} if "compress" in name else params]
                             for name, params in vae["encoder_blocks"]]
    return vae


def build_pipeline_stack(root: str, *, seed: int = 0) -> tuple[str, str, str, CodecRequest]:
    """A tiny official-layout stack the reference pipelines can run (128-channel latents; 64 mel bins → 8 × 16
    audio latents), stored in bf16 as the released files are (ltx-core fuses LoRAs only into bf16 weights):
    (checkpoint path, gemma dir, upsampler path, the request for a 64 × 96 px, 17-frame clip)."""
    from helpers.checkpoints import to_bf16
    from unityshots_jax.reference import tiny_audio, tiny_media, tiny_stack, tiny_text
    from unityshots_jax.reference.tiny_configs import tiny_transformer_config

    path, gemma = os.path.join(root, "ltx-2.3-tiny.safetensors"), os.path.join(root, "gemma")
    written = os.path.join(root, "ltx-2.3-tiny-f32.safetensors")
    audio = {"audio_vae": tiny_audio.tiny_audio_vae(z_channels=8, ch=PIPELINE_C, ch_mult=(1, 1, 1)),
             "vocoder": tiny_audio.tiny_vocoder_bwe()}
    width, states = PIPELINE_GEMMA
    tiny_stack.write_full_stack(
        written, gemma, transformer=tiny_transformer_config(in_channels=PIPELINE_C, audio_channels=PIPELINE_C),
        vae=pipeline_vae(), audio=audio, words=WORDS + ["blurry", "low", "quality"], seed=seed,
        gemma=tiny_text.tiny_gemma_config(layers=states - 1, hidden=width, heads=4, kv_heads=2, head_dim=8, window=5))
    to_bf16(written, path)
    os.remove(written)
    upsampler = os.path.join(root, "upsampler.safetensors")
    tiny_media.write_tiny_upsampler(upsampler, {"in_channels": PIPELINE_C, "mid_channels": 32,
                                                "num_blocks_per_stage": 1, "dims": 3})
    request = CodecRequest((3, 2, 3, PIPELINE_C), 32, 16, 1024, weights=path, text_encoder_dir=gemma,
                           upsampler=upsampler)
    return path, gemma, upsampler, request
