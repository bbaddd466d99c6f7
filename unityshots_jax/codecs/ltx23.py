"""The `ltx23` codec bundle: LTX-2.3's video VAE (+ ×2 upsampler), audio VAE + vocoder/BWE and Gemma-3 text path.

Built from a `CodecRequest`: `weights` is the official LTX-2.3 single file or a directory converted from it (VAE,
audio VAE, vocoder and text-connector tensors, config in its metadata), `text_encoder_dir` the Hugging Face
Gemma-3 directory, `upsampler` (optional) the official ×2 spatial upscaler file, `dtype` the parameter and
activation dtype. Before any tensor is read, the components' configs are checked against each other and against
the request (latent channels, latent grid, context widths, audio token width); a mismatch is one
`CodecUnavailable` naming the component and both numbers. Video decode is tiled with ltx-core's default tiling
(as ltx-pipelines decodes), so device memory stays bounded for any shot length.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp

from unityshots_jax.checkpoint.safetensors_io import CheckpointError
from unityshots_jax.codecs.base import CodecBundle, CodecRequest, CodecUnavailable, register_codecs
from unityshots_jax.codecs.ltx23_audio import LTX23AudioCodec
from unityshots_jax.codecs.ltx23_text import build_text_encoder
from unityshots_jax.codecs.ltx23_video import LTX23VideoCodec
from unityshots_jax.vae.audio.config import AudioVAEConfig, audio_vae_config, vocoder_config
from unityshots_jax.vae.loading import open_source
from unityshots_jax.vae.upsampler import UpsamplerConfig
from unityshots_jax.vae.video.config import VideoVAEConfig, vae_config_from_checkpoint
from unityshots_jax.vae.video.tiling import Tiling

NAME = "ltx23"
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
DEFAULT_TILING = Tiling.default()  # ltx-core's TilingConfig.default(): 512 px / 64 px, 64 frames / 24 frames


@dataclasses.dataclass(frozen=True)
class StackConfigs:
    """The configs of one LTX checkpoint (read from its header only): video VAE, audio VAE, and the transformer
    entry (None when the file carries none, e.g. a VAE-only file)."""

    video: VideoVAEConfig
    audio: AudioVAEConfig
    transformer: dict | None


def _refuse(message: str) -> CodecUnavailable:
    return CodecUnavailable(f"{NAME}: {message}")


def _require_paths(request: CodecRequest) -> None:
    """Every path the bundle needs is set and exists; refusals name the request field."""
    for field, what in (("weights", "the LTX-2.3 checkpoint file (or a directory converted from it)"),
                        ("text_encoder_dir", "the Hugging Face Gemma-3 directory")):
        value = getattr(request, field)
        if not value:
            raise _refuse(f"{field} is not set; give {what}")
        if not os.path.exists(value):
            raise _refuse(f"{field}: {value} does not exist")
    if request.upsampler is not None and not os.path.isfile(request.upsampler):
        raise _refuse(f"upsampler: {request.upsampler} is not a file")
    if request.dtype not in _DTYPES:
        raise _refuse(f"dtype {request.dtype!r} is not one of {sorted(_DTYPES)}")


def read_configs(weights: str) -> StackConfigs:
    """The component configs of `weights` (header / config.json only); refuses a file without a video VAE,
    an audio VAE or a vocoder, naming the missing entry."""
    try:
        config = open_source(weights).config
        for entry, component in (("vae", "video VAE"), ("audio_vae", "audio VAE"), ("vocoder", "vocoder")):
            if entry not in config:
                raise _refuse(f"{weights} holds no {component} (no {entry!r} entry in its config)")
        vocoder_config(config)
        return StackConfigs(vae_config_from_checkpoint(config), audio_vae_config(config), config.get("transformer"))
    except (CheckpointError, ValueError) as err:
        if isinstance(err, CodecUnavailable):
            raise
        raise _refuse(str(err)) from err


def _check(component: str, what: str, got: int, want: int, whose: str) -> None:
    if got != want:
        raise _refuse(f"{component}: {what} is {got}, {whose} is {want}")


def check_stack(request: CodecRequest, cfgs: StackConfigs) -> None:
    """The components agree with each other and with the request (see the module doc); CodecUnavailable naming
    the component and both numbers otherwise."""
    frames, h, w, channels = request.latent_grid
    if min(frames, h, w, channels) < 1:
        raise _refuse(f"latent_grid {tuple(request.latent_grid)} has a non-positive size")
    video, audio = cfgs.video, cfgs.audio
    _check("video VAE", "latent channels", video.latent_channels, channels, "the model's latent grid's")
    if video.decoder_temporal_scale != video.temporal_scale or video.decoder_spatial_scale != video.spatial_scale:
        raise _refuse(f"video VAE: the decoder scales ({video.decoder_temporal_scale}, {video.decoder_spatial_scale}) "
                      f"differ from the encoder's ({video.temporal_scale}, {video.spatial_scale})")
    if audio.mel_bins * audio.out_ch != 128:
        raise _refuse(f"audio VAE: decodes {audio.out_ch} × {audio.mel_bins} mel bins, the vocoder takes 2 × 64")
    t = cfgs.transformer
    if t is None:
        return
    _check("transformer", "video in_channels", t.get("in_channels", 128), video.latent_channels,
           "the video VAE's latent channels")
    _check("transformer", "audio_in_channels", t.get("audio_in_channels", 128), audio.latent_channels,
           f"the audio VAE's z_channels × latent mel bins ({audio.z_channels} × {audio.latent_mel_bins})")
    if t.get("caption_proj_before_connector", False):
        for key, field in (("cross_attention_dim", "video_context_dim"),
                           ("audio_cross_attention_dim", "audio_context_dim")):
            if key in t:
                _check("transformer", key, t[key], getattr(request, field), f"the request's {field}")


def _check_upsampler(path: str, cfgs: StackConfigs) -> None:
    try:
        up = UpsamplerConfig.from_config(open_source(path, config_from_file=False).config)
    except (CheckpointError, ValueError) as err:
        raise _refuse(f"upsampler: {err}") from err
    _check("upsampler", f"in_channels of {path}", up.in_channels, cfgs.video.latent_channels,
           "the video VAE's latent channels")
    if up.stride != (1, 2, 2):
        raise _refuse(f"upsampler: {path} upsamples by {up.stride} (time, height, width); the two-stage pipeline "
                      "needs the spatial ×2 upsampler (1, 2, 2)")


def _load(component: str, build):
    """`build()`, with a loader error turned into CodecUnavailable naming the component."""
    try:
        return build()
    except CodecUnavailable:
        raise
    except (CheckpointError, ValueError) as err:
        raise _refuse(f"{component}: {err}") from err


def ltx23_codecs(request: CodecRequest) -> CodecBundle:
    """The `ltx23` bundle for `request`: everything checked from the configs first, then loaded (see module doc).

    frame_size: (H, W) = 32 × the latent grid's (h, w) (1376×768 pixels ↔ a 43×24 grid)."""
    _require_paths(request)
    cfgs = read_configs(request.weights)
    check_stack(request, cfgs)
    if request.upsampler is not None:
        _check_upsampler(request.upsampler, cfgs)
    dtype = _DTYPES[request.dtype]
    video = _load("video VAE", lambda: LTX23VideoCodec.from_checkpoint(
        request.weights, upsampler_path=request.upsampler, tiling=DEFAULT_TILING, dtype=dtype))
    audio = _load("audio VAE / vocoder", lambda: LTX23AudioCodec(request.weights, dtype=request.dtype))
    text = _load("text encoder", lambda: build_text_encoder(request))
    _check("text encoder", "tokens per caption", text.tokens, request.text_tokens, "the request's text_tokens")
    _, h, w, _ = request.latent_grid
    return CodecBundle(NAME, video, audio, text, (h * video.spatial_scale, w * video.spatial_scale))


register_codecs(NAME, ltx23_codecs)
