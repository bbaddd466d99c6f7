"""A tiny official-layout LTX-2.3 stack for the codec tests: one file with transformer, video VAE, audio VAE,
vocoder + BWE and text connectors, a tiny Gemma-3 directory and a ×2 upsampler file (reference builders)."""

from __future__ import annotations

import os

from helpers.video_vae_configs import ltx23_tiny
from unityshots_jax.codecs.base import CodecRequest

WORDS = ("a meadow in bright light pip is red striped square wide shot walks right close up stands still jumps "
         "speaking ba lo mi ko ta ne . -").split()
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
