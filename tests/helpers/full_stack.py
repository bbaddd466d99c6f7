"""A tiny FULL-STACK official single file: transformer + text connectors/projection + video VAE + audio VAE +
vocoder (BWE), every part built by ltx-core's own builders (unityshots_jax/reference/), one combined config."""

from __future__ import annotations

import json
import os

import numpy as np

from helpers import audio as _audio_hook  # noqa: F401  (installs the torchaudio import hook before ltx_core audio)
from helpers.checkpoints import read_all
from helpers.video_vae_configs import ltx23_tiny
from unityshots_jax.checkpoint.safetensors_io import write_safetensors

GEMMA_DIM, GEMMA_STATES = 24, 3  # the text projection's input: caption_channels × hidden states


def full_stack_config() -> dict:
    from unityshots_jax.reference import tiny_audio
    from unityshots_jax.reference.tiny_configs import tiny_transformer_config

    return {"transformer": tiny_transformer_config(caption_channels=GEMMA_DIM),
            "vae": ltx23_tiny(latent_channels=16, base=8),
            "audio_vae": tiny_audio.tiny_audio_vae(),
            "vocoder": tiny_audio.tiny_vocoder_bwe()}


def write_full_stack(path: str, seed: int = 0) -> str:
    """Write the full-stack file at `path` (parts in the official key order: transformer, text, VAE, audio)."""
    from unityshots_jax.reference import tiny_audio, tiny_text
    from unityshots_jax.reference.ltx_reference import build_random_reference, save_official_checkpoint
    from unityshots_jax.reference.tiny_media import write_tiny_vae

    config = full_stack_config()
    folder = os.path.dirname(os.path.abspath(path))
    parts = [os.path.join(folder, f".part-{n}.safetensors") for n in ("transformer", "vae", "audio")]
    processor = tiny_text.build_processor(config["transformer"], GEMMA_DIM, GEMMA_STATES, seed)
    save_official_checkpoint(build_random_reference(config["transformer"], seed), config["transformer"], parts[0])
    write_tiny_vae(parts[1], config["vae"], seed=seed + 1)
    audio_cfg = {"audio_vae": config["audio_vae"], "vocoder": config["vocoder"]}
    tiny_audio.save_official(tiny_audio.build_random_audio(audio_cfg, seed + 2), audio_cfg, parts[2])
    tensors: dict[str, np.ndarray] = tiny_text.processor_file_tensors(processor)  # registers stay bf16
    order: list[str] = list(tensors)
    for part in parts:
        t, _, keys = read_all(part)
        tensors.update(t)
        order += keys
        os.remove(part)
    write_safetensors(path, tensors, {"config": json.dumps(config), "model_version": "2.3.0"}, order)
    return path
