"""Tiny random ltx-core 1.0.0 video VAEs and latent upsamplers in the official file layouts, and reference runs.

Built through ltx-core's own configurators, every parameter and buffer initialised from a seeded generator,
saved exactly as the official files lay them out (`vae.decoder.` / `vae.encoder.` / `vae.per_channel_statistics.`
with the config in `metadata["config"]`; the upsampler without a prefix, its config in its own metadata), and run
after reloading through ltx-core's `SingleGPUModelBuilder` with the official key filters. Imports torch.
Video tensors here are channels-first `[B, C, F, H, W]` (ltx-core's layout).
"""

from __future__ import annotations

import json
import math

import numpy as np
import safetensors.torch
import torch
from ltx_core.loader import SingleGPUModelBuilder
from ltx_core.model.upsampler import LatentUpsamplerConfigurator
from ltx_core.model.upsampler.model import upsample_video
from ltx_core.model.video_vae import (
    VAE_DECODER_COMFY_KEYS_FILTER,
    VAE_ENCODER_COMFY_KEYS_FILTER,
    VideoDecoderConfigurator,
    VideoEncoderConfigurator,
)
from ltx_core.model.video_vae.tiling import SpatialTilingConfig, TemporalTilingConfig, TilingConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def _randomise(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Seeded values for every parameter: kernels N(0, 1/fan_in), biases N(0, 0.1²), norm weights 1 + N(0, 0.1²)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("timestep_scale_multiplier"):
                p.copy_(1000.0 + 10.0 * noise)
            elif p.ndim > 1:
                p.copy_(noise / math.sqrt(p[0].numel()))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)


def _stats(channels: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "std-of-means": torch.rand(channels, generator=gen) + 0.5,
        "mean-of-means": 0.3 * torch.randn(channels, generator=gen),
    }


def write_tiny_vae(path: str, vae_config: dict, seed: int = 0, extra_metadata: dict | None = None) -> None:
    """A random encoder + decoder for `{"vae": vae_config}` written as an official single file at `path`."""
    gen = torch.Generator().manual_seed(seed)
    full = {"vae": vae_config}
    with torch.device("meta"):
        enc_meta = VideoEncoderConfigurator.from_config(full)
        dec_meta = VideoDecoderConfigurator.from_config(full)
    enc = enc_meta.to_empty(device="cpu")
    dec = dec_meta.to_empty(device="cpu")
    _randomise(enc, gen)
    _randomise(dec, gen)
    tensors = {}
    for prefix, module in (("vae.encoder.", enc), ("vae.decoder.", dec)):
        for name, p in module.named_parameters():
            tensors[prefix + name] = p.detach().contiguous()
    for name, value in _stats(vae_config.get("latent_channels", 128), gen).items():
        tensors["vae.per_channel_statistics." + name] = value.contiguous()
    meta = {"config": json.dumps(full), **(extra_metadata or {})}
    safetensors.torch.save_file(tensors, path, metadata=meta)


def write_tiny_upsampler(path: str, config: dict, seed: int = 0) -> None:
    """A random `LatentUpsampler` for `config` written like the official upscaler file (no prefix)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = LatentUpsamplerConfigurator.from_config(config)
    model = model.to_empty(device="cpu")
    _randomise(model, gen)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(tensors, path, metadata={"config": json.dumps(config)})


def _build(configurator, path: str, sd_ops, dtype: str) -> torch.nn.Module:
    builder = SingleGPUModelBuilder(model_class_configurator=configurator, model_path=path, model_sd_ops=sd_ops)
    model = builder.build(device=torch.device("cpu"), dtype=DTYPES[dtype]).eval()
    missing = [n for n, p in [*model.named_parameters(), *model.named_buffers()] if p.is_meta]
    if missing:
        raise RuntimeError(f"{path}: ltx-core left {missing[:3]} uninitialised")
    return model


def load_reference(path: str, part: str, dtype: str = "float32") -> torch.nn.Module:
    """ltx-core's encoder / decoder / upsampler from `path` through its official loader, in `dtype`."""
    if part == "encoder":
        return _build(VideoEncoderConfigurator, path, VAE_ENCODER_COMFY_KEYS_FILTER, dtype)
    if part == "decoder":
        return _build(VideoDecoderConfigurator, path, VAE_DECODER_COMFY_KEYS_FILTER, dtype)
    if part == "upsampler":
        return _build(LatentUpsamplerConfigurator, path, None, dtype)
    raise ValueError(f"unknown part {part!r}")


def tiling_config(spatial: tuple[int, int] | None, temporal: tuple[int, int] | None) -> TilingConfig:
    """ltx-core `TilingConfig` from (tile, overlap) pixel / frame pairs (None: no tiling on that axis)."""
    return TilingConfig(
        spatial_config=SpatialTilingConfig(*spatial) if spatial else None,
        temporal_config=TemporalTilingConfig(*temporal) if temporal else None,
    )


def run_reference(path: str, part: str, x: np.ndarray, *, tiling: TilingConfig | None = None,
                  vae_path: str | None = None, noise: np.ndarray | None = None, threads: int = 1,
                  dtypes: tuple[str, ...] = ("float32", "float64")) -> dict[str, np.ndarray]:
    """Run `part` on channels-first `x` in each of `dtypes`: {"float32": out, "float64": out} (float64 arrays for
    "bfloat16").

    part: "encoder", "decoder", "tiled_decoder", "tiled_encoder", "upsampler" (the bare model) or
    "upsample_video" (un-normalise with the encoder of `vae_path` → upsampler → normalise).
    noise (timestep-conditioned decoders, `[B, C, F, h, w]`): the decoder's `torch.randn` draw, given explicitly so
    both precisions see the same values: mixed into the input exactly as ltx-core does (`noise·s + (1−s)·x`), then
    the decoder runs with `decode_noise_scale = 0`, which makes its own draw contribute exactly nothing.
    """
    torch.set_num_threads(threads)
    out = {}
    for dtype in dtypes:
        xt = torch.from_numpy(np.asarray(x)).to(DTYPES[dtype])
        with torch.no_grad():
            if part == "decoder" and noise is not None:
                dec = load_reference(path, part, dtype)
                scale, dec.decode_noise_scale = dec.decode_noise_scale, 0.0
                y = dec(torch.from_numpy(np.asarray(noise)).to(xt.dtype) * scale + (1.0 - scale) * xt)
            elif part in ("encoder", "decoder", "upsampler"):
                y = load_reference(path, part, dtype)(xt)
            elif part == "tiled_decoder":
                dec = load_reference(path, "decoder", dtype)
                y = torch.cat(list(dec.tiled_decode(xt, tiling)), dim=2)
            elif part == "tiled_encoder":
                y = load_reference(path, "encoder", dtype).tiled_encode(xt, tiling)
            elif part == "upsample_video":
                enc = load_reference(vae_path, "encoder", dtype)
                y = upsample_video(xt, enc, load_reference(path, "upsampler", dtype))
            else:
                raise ValueError(f"unknown part {part!r}")
        out[dtype] = y.double().numpy() if dtype == "bfloat16" else y.numpy()
    return out
