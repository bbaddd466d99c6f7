"""The codec interface: what a story model needs to turn media and text into latents and back.

A *codec bundle* is what a story model was trained with and must generate with: a video codec, an audio codec
and a text encoder, registered under one name (`"toy_world"`, `"ltx23"`). Training-record writers and
generation both build their bundle through `build_codecs`, so the two always share one latent space. The name
is stored as `codec` in training configs and in a packaged model's metadata.

Conventions (every codec, one clip at a time, no batch axis, numpy float32 in and out):
* video frames `[T, H, W, 3]` in [0, 1] ↔ latents `[F, h, w, C]` (`F` from `latent_shape`; LTX: T = 8(F−1)+1);
* waveforms `[N, channels]` in [−1, 1] at `sample_rate` (encode) / `output_sample_rate` (decode) ↔ latents
  `[Fa, Ca]`;
* captions → `TextContexts` (`[B, S, Dv]`, `[B, S, Da]`, mask `[B, S]`), all captions of a call in one batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


class CodecUnavailable(ValueError):
    """A codec bundle cannot be built here (unknown name, missing weights or files); the message says which."""


@runtime_checkable
class VideoCodec(Protocol):
    """frames `[T, H, W, 3]` in [0, 1] ↔ latents `[F, h, w, C]`."""

    fps: float
    temporal_scale: int
    spatial_scale: int
    latent_channels: int

    def latent_shape(self, frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(F, h, w, C) of a clip of `frames` × `height` × `width` px; raises naming the size it cannot take."""
        ...

    def frame_count(self, latent_frames: int) -> int:
        """Pixel frames decoded from `latent_frames` latent frames."""
        ...

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """frames `[T, H, W, 3]` in [0, 1] → latents `[F, h, w, C]`."""
        ...

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latents `[F, h, w, C]` → frames `[frame_count(F), h·s, w·s, 3]` in [0, 1]."""
        ...


@runtime_checkable
class AudioCodec(Protocol):
    """waveform `[N, channels]` at `sample_rate` → latents `[Fa, Ca]` → waveform at `output_sample_rate`."""

    sample_rate: int
    output_sample_rate: int
    channels: int
    latent_channels: int

    @property
    def latent_rate(self) -> float:
        """Audio latent frames per second."""
        ...

    def latent_shape(self, samples: int) -> tuple[int, int]:
        """(Fa, Ca) of `samples` samples at `sample_rate`."""
        ...

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """wave `[N, channels]` at `sample_rate` → latents `[Fa, Ca]`."""
        ...

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """latents `[Fa, Ca]` → wave `[decoded_samples(Fa), channels]` at `output_sample_rate`."""
        ...

    def decoded_samples(self, latent_frames: int) -> int:
        """Samples (at `output_sample_rate`) that `decode` returns for `latent_frames` latent frames."""
        ...


@dataclasses.dataclass(frozen=True)
class TextContexts:
    """video `[B, S, Dv]`, audio `[B, S, Da]` float32; mask `[B, S]` int32 (1 = real token)."""

    video: np.ndarray
    audio: np.ndarray
    mask: np.ndarray


@runtime_checkable
class TextEncoder(Protocol):
    """captions → the two streams' contexts, all captions of one call in one batch."""

    tokens: int
    video_dim: int
    audio_dim: int

    def encode(self, captions: Sequence[str]) -> TextContexts:
        """captions (B strings) → `TextContexts` with `[B, tokens, ·]` arrays."""
        ...

    def truncated(self, caption: str) -> bool:
        """Whether `caption` is longer than the encoder keeps (the rest is ignored; callers warn)."""
        ...


@dataclasses.dataclass(frozen=True)
class CodecBundle:
    """The codecs a story model was trained with. frame_size: (H, W) px of the model's frames."""

    name: str
    video: VideoCodec
    audio: AudioCodec
    text: TextEncoder
    frame_size: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class CodecRequest:
    """What a bundle is built from.

    latent_grid: (frames, height, width, channels) of the model's video latents (the story config's grid);
    video_context_dim / audio_context_dim / text_tokens: the transformer's context widths and length;
    weights: a converted LTX directory (or official file) holding the VAE / vocoder / connector tensors, when the
    codec needs weights; text_encoder_dir: a Hugging Face text-encoder directory, when it needs one;
    dtype: activation dtype of learned codecs;
    upsampler: the ×2 spatial latent upsampler file, for codecs that offer one (two-stage generation).
    """

    latent_grid: tuple[int, int, int, int]
    video_context_dim: int
    audio_context_dim: int
    text_tokens: int
    weights: str | None = None
    text_encoder_dir: str | None = None
    dtype: str = "float32"
    upsampler: str | None = None


def codec_name(doc: dict, where: str) -> str:
    """The `codec` entry of a training config or a packaged model's metadata (`where` names it in errors).

    There is no default and no guess: a config or package written before the key existed says so, and the fix
    is to add `"codec": "<name>"` (e.g. "toy_world") to it.
    """
    name = doc.get("codec")
    if not isinstance(name, str) or not name:
        raise CodecUnavailable(f"{where}: no 'codec' entry (written before codecs were named); add \"codec\": "
                               f"\"<name>\" with one of: {', '.join(registered_codecs())}")
    return name


CodecFactory = Callable[[CodecRequest], CodecBundle]
_REGISTRY: dict[str, CodecFactory] = {}


def register_codecs(name: str, factory: CodecFactory) -> None:
    """Make `build_codecs(name, …)` call `factory`; a second registration of one name is an error."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"codec {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_codecs() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def build_codecs(name: str, request: CodecRequest) -> CodecBundle:
    """The bundle registered as `name`, built for `request`; unknown names are refused with the known ones."""
    _load_builtin()
    if name not in _REGISTRY:
        hint = (" — LTX-2.3 media need the ltx23 bundle (video / audio VAE, vocoder, Gemma text encoder), which this "
                "installation does not have" if name.startswith("ltx") else "")
        raise CodecUnavailable(f"codec: unknown codec {name!r} (known: {', '.join(sorted(_REGISTRY))}){hint}")
    bundle = _REGISTRY[name](request)
    for field, proto in (("video", VideoCodec), ("audio", AudioCodec), ("text", TextEncoder)):
        if not isinstance(getattr(bundle, field), proto):
            raise TypeError(f"codec {name!r}: its {field} does not implement {proto.__name__}")
    return bundle


_BUILTIN = ("unityshots_jax.toy_world.codec_bundle", "unityshots_jax.codecs.ltx23")


def _load_builtin() -> None:
    """Import the modules that register the built-in bundles (each registers itself on import, if present)."""
    import importlib

    for module in _BUILTIN:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
