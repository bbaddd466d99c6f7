"""Tiny random ltx-core audio VAE + vocoder, written in the official single-file layout and reloaded officially.

Reference side (imports torch and ltx-core through `torchaudio_compat`). Builds the modules through ltx-core
1.0.0's own configurators from a config dict shaped like the real checkpoint's `audio_vae` / `vocoder` entries,
initialises every parameter and buffer from one seeded generator, writes them under the official prefixes
(`audio_vae.encoder.`, `audio_vae.decoder.`, `audio_vae.per_channel_statistics.`, `vocoder.`), and loads them back
with `SingleGPUModelBuilder` + the official key filters, so the reference runs exactly what a user's file gives.
"""

from __future__ import annotations

import json
import math
import os
import tempfile

import torch

from unityshots_jax.reference.torchaudio_compat import import_torchaudio

import_torchaudio()

import safetensors.torch  # noqa: E402
from ltx_core.loader import SingleGPUModelBuilder  # noqa: E402
from ltx_core.model.audio_vae import (  # noqa: E402
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
    AudioDecoderConfigurator,
    AudioEncoderConfigurator,
    AudioProcessor,
    VocoderConfigurator,
)

_STATS = "per_channel_statistics."


def tiny_audio_vae(*, ch: int = 32, z_channels: int = 2, ch_mult=(1, 2, 4), num_res_blocks: int = 1,
                   mel_bins: int = 64, sample_rate: int = 16000, hop: int = 160, n_fft: int = 1024) -> dict:
    """An `audio_vae` config entry in the real checkpoint's shape (2.3 values, small sizes)."""
    return {
        "model": {"params": {
            "ddconfig": {
                "double_z": True, "mel_bins": mel_bins, "z_channels": z_channels, "resolution": 256,
                "downsample_time": False, "in_channels": 2, "out_ch": 2, "ch": ch, "ch_mult": list(ch_mult),
                "num_res_blocks": num_res_blocks, "attn_resolutions": [], "dropout": 0.0,
                "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height",
            },
            "sampling_rate": sample_rate,
        }},
        "preprocessing": {
            "stft": {"filter_length": n_fft, "hop_length": hop, "win_length": n_fft, "causal": True},
            "mel": {"n_mel_channels": mel_bins, "mel_fmin": 0, "mel_fmax": sample_rate // 2},
        },
    }


def _generator_entry(channels: int, rates, kernels) -> dict:
    return {
        "upsample_initial_channel": channels, "resblock": "AMP1", "upsample_rates": list(rates),
        "upsample_kernel_sizes": list(kernels), "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "stereo": True, "use_tanh_at_final": False,
        "activation": "snakebeta", "use_bias_at_final": False,
    }


def tiny_vocoder_bwe(*, vocoder_channels: int = 64, bwe_channels: int = 32) -> dict:
    """A 2.3 `vocoder` config entry (vocoder + BWE) with the real rates and kernels and few channels."""
    bwe = _generator_entry(bwe_channels, [6, 5, 2, 2, 2], [12, 11, 4, 4, 4])
    bwe.update({"apply_final_activation": False, "input_sampling_rate": 16000, "output_sampling_rate": 48000,
                "hop_length": 80, "n_fft": 512, "win_size": 512, "num_mels": 64})
    return {"vocoder": _generator_entry(vocoder_channels, [5, 2, 2, 2, 2, 2], [11, 4, 4, 4, 4, 4]), "bwe": bwe}


def tiny_hifigan_vocoder(*, channels: int = 32, rates=(5, 4, 2, 2, 2), kernels=(11, 8, 4, 4, 4)) -> dict:
    """A 19B-style flat `vocoder` entry (HiFi-GAN ResBlock1, LeakyReLU, tanh)."""
    return {"upsample_initial_channel": channels, "resblock": "1", "upsample_rates": list(rates),
            "upsample_kernel_sizes": list(kernels), "resblock_kernel_sizes": [3, 7, 11],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "stereo": True,
            "output_sampling_rate": 16000}


def _causal_stft_basis(n_fft: int) -> torch.Tensor:
    """`[2·(n_fft/2+1), 1, n_fft]`: DFT rows (real, then imaginary) times a periodic Hann window."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    angle = 2 * math.pi * k * n / n_fft
    return torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])[:, None, :].float()


@torch.no_grad()
def _init(module: torch.nn.Module, generator: torch.Generator) -> None:
    tensors = dict(module.named_parameters())
    tensors.update(dict(module.named_buffers()))
    for name in sorted(tensors):
        t = tensors[name]
        noise = torch.randn(t.shape, generator=generator, dtype=torch.float32)
        if name.endswith("std-of-means"):
            t.copy_(0.5 + noise.abs())
        elif name.endswith("mean-of-means"):
            t.copy_(0.3 * noise)
        elif name.endswith((".alpha", ".beta")):
            t.copy_(0.3 * noise)
        elif name.endswith(".filter"):  # perturb the Kaiser-sinc filters: the port must read them, not recompute
            t.mul_(1 + 0.05 * noise)
        elif name.endswith("mel_basis") or "stft_fn" in name:
            continue
        elif name.endswith(".weight"):
            fan_in = t.numel() // (t.shape[1] if ".ups." in name else t.shape[0])
            gain = 0.1 if name.endswith("conv_post.weight") else 1.0  # keep waveforms mostly inside the clamp
            t.copy_(gain * noise / math.sqrt(fan_in))
        elif name.endswith(".bias"):
            t.copy_(0.05 * noise)
        else:
            raise RuntimeError(f"tiny_audio: no initialiser for {name}")


@torch.no_grad()
def _set_mel_stft(vocoder: torch.nn.Module, n_fft: int, num_mels: int, rate: int) -> None:
    torchaudio = import_torchaudio()
    basis = _causal_stft_basis(n_fft)
    stft = vocoder.mel_stft.stft_fn
    stft.forward_basis.copy_(basis)
    stft.inverse_basis.copy_(basis)
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, rate / 2, num_mels, rate, "slaney", "slaney")
    vocoder.mel_stft.mel_basis.copy_(fb.T)


def build_random_audio(config: dict, seed: int) -> dict[str, torch.nn.Module]:
    """{"encoder", "decoder", "vocoder"} built by ltx-core's configurators from `config`, seeded, float32, eval.

    The encoder and decoder share one set of per-channel statistics (as in the file). With a 2.3 vocoder, the
    `mel_stft` buffers get a real causal Hann-DFT basis and a Slaney mel filterbank.
    """
    gen = torch.Generator().manual_seed(seed)
    modules = {"encoder": AudioEncoderConfigurator.from_config(config),
               "decoder": AudioDecoderConfigurator.from_config(config)}
    if "vocoder" in config:
        modules["vocoder"] = VocoderConfigurator.from_config(config)
    for m in modules.values():
        m.float()
        _init(m, gen)
    with torch.no_grad():
        for name, buf in modules["encoder"].per_channel_statistics.named_buffers():
            modules["decoder"].per_channel_statistics.get_buffer(name).copy_(buf)
    bwe = config.get("vocoder", {}).get("bwe")
    if bwe is not None:
        _set_mel_stft(modules["vocoder"], bwe["n_fft"], bwe["num_mels"], bwe["input_sampling_rate"])
    return {k: m.eval() for k, m in modules.items()}


def save_official(modules: dict[str, torch.nn.Module], config: dict, path: str) -> None:
    """Write the modules under the official file prefixes with `metadata["config"] = json(config)` (atomic).

    The BWE's `mel_stft.*` buffers are stored as bfloat16, as in the released file.
    """
    tensors: dict[str, torch.Tensor] = {}
    for part in ("encoder", "decoder"):
        for key, value in modules[part].state_dict().items():
            if key.startswith(_STATS):
                tensors["audio_vae." + key] = value
            else:
                tensors[f"audio_vae.{part}.{key}"] = value
    if "vocoder" in modules:
        for key, value in modules["vocoder"].state_dict().items():
            tensors["vocoder." + key] = value.to(torch.bfloat16) if key.startswith("mel_stft.") else value
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_audio_", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        safetensors.torch.save_file(tensors, tmp, metadata={"config": json.dumps(config), "model_version": "2.3.0"})
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


def load_official(path: str, dtype: torch.dtype = torch.float32) -> dict[str, torch.nn.Module]:
    """{"encoder", "decoder", "vocoder" (if configured)} through `SingleGPUModelBuilder` and the official filters."""
    torch.set_num_threads(1)
    parts = {"encoder": (AudioEncoderConfigurator, AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER),
             "decoder": (AudioDecoderConfigurator, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER)}
    with safetensors.safe_open(path, "pt") as f:
        if "vocoder" in json.loads(f.metadata()["config"]):
            parts["vocoder"] = (VocoderConfigurator, VOCODER_COMFY_KEYS_FILTER)
    out = {}
    for name, (configurator, ops) in parts.items():
        builder = SingleGPUModelBuilder(model_class_configurator=configurator, model_path=path, model_sd_ops=ops)
        model = builder.build(device=torch.device("cpu"), dtype=torch.float32)
        meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
        if meta:
            raise RuntimeError(f"{path}: {name} left {meta[:3]} uninitialised")
        out[name] = model.to(dtype).eval()
    return out


def audio_processor(encoder: torch.nn.Module) -> AudioProcessor:
    """ltx-core's `AudioProcessor` for `encoder` (what `encode_audio` builds when given none)."""
    return AudioProcessor(target_sample_rate=encoder.sample_rate, mel_bins=encoder.mel_bins,
                          mel_hop_length=encoder.mel_hop_length, n_fft=encoder.n_fft)


def ltx23_audio_config() -> dict:
    """The released LTX-2.3 checkpoint's `audio_vae` and `vocoder` config entries (full size)."""
    vocoder = tiny_vocoder_bwe(vocoder_channels=1536, bwe_channels=512)
    return {"audio_vae": tiny_audio_vae(ch=128, z_channels=8, num_res_blocks=2), "vocoder": vocoder}


def full_size_keys(config: dict) -> dict[str, dict[str, tuple[int, ...]]]:
    """{"encoder" | "decoder" | "vocoder": {file key: shape}} of ltx-core's modules for `config`, built on meta."""
    with torch.device("meta"):
        modules = {"encoder": AudioEncoderConfigurator.from_config(config),
                   "decoder": AudioDecoderConfigurator.from_config(config),
                   "vocoder": VocoderConfigurator.from_config(config)}
    out = {}
    for name, module in modules.items():
        keys = {}
        for key, value in module.state_dict().items():
            if name == "vocoder":
                keys["vocoder." + key] = tuple(value.shape)
            else:
                keys[("audio_vae." if key.startswith(_STATS) else f"audio_vae.{name}.") + key] = tuple(value.shape)
        out[name] = keys
    return out
