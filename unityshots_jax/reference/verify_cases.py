"""Seeded transformer parity cases as plain numpy (loadable without torch).

`make_verify_cases` builds positions with the official ltx-core latent tools (imported lazily, so
`StreamInputs`, `VerifyCase`, `save_cases` and `load_cases` need only numpy).
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from unityshots_jax.reference.tiny_configs import context_dims

PERTURBATION_TYPES = ("skip_video_self_attn", "skip_audio_self_attn", "skip_a2v_cross_attn", "skip_v2a_cross_attn")
VIDEO_GRID = (3, 4, 6)  # latent frames, height, width -> 72 tokens
AUDIO_FRAMES = 17
TEXT_TOKENS = 8
FPS = 24.0
PADDED_TEXT_TOKENS = 3  # left padding of sample 1 in the masked cases
_STREAM_FIELDS = ("latent", "sigma", "timesteps", "positions", "context", "context_mask")

Perturbations = tuple[tuple[tuple[str, "tuple[int, ...] | None"], ...], ...]


@dataclasses.dataclass(frozen=True, eq=False)
class StreamInputs:
    """One modality's transformer inputs (float32 / int64 numpy).

    latent: `[batch, tokens, in_channels]`; sigma: `[batch]`; timesteps: `[batch, tokens]` (= sigma *
    denoise_mask); positions: `[batch, n_axes, tokens, 2]` `[start, end)` bounds (video: 3 axes seconds,
    px, px; audio: 1 axis seconds); context: `[batch, text_tokens, context_dim]`; context_mask:
    `[batch, text_tokens]` int64 (1 = keep, 0 = pad) or None.
    """

    latent: np.ndarray
    sigma: np.ndarray
    timesteps: np.ndarray
    positions: np.ndarray
    context: np.ndarray
    context_mask: np.ndarray | None


@dataclasses.dataclass(frozen=True, eq=False)
class VerifyCase:
    """A named parity case: both streams (either may be None) and per-sample perturbations.

    `perturbations[b]` is sample b's tuple of `(type_name, blocks)`; type_name in `PERTURBATION_TYPES`,
    blocks a tuple of 0-based block indices or None (= all blocks). `len(perturbations)` is the batch size.
    """

    name: str
    video: StreamInputs | None
    audio: StreamInputs | None
    perturbations: Perturbations

    @property
    def batch(self) -> int:
        """Batch size of the case."""
        return len(self.perturbations)


def audio_latent_layout(audio_in_channels: int) -> tuple[int, int]:
    """`(latent_channels, mel_bins)` with product `audio_in_channels` (8 x 16 for the real 128).

    Tiny sizes use the largest `mel_bins <= sqrt(audio_in_channels)` dividing it (16 -> 4 x 4).
    """
    if audio_in_channels == 128:
        return 8, 16
    mel_bins = max(d for d in range(1, audio_in_channels + 1)
                   if audio_in_channels % d == 0 and d * d <= audio_in_channels)
    return audio_in_channels // mel_bins, mel_bins


def _official_streams(config: dict, batch: int, rng: np.random.Generator, dtype: str) -> dict:
    """Latents, denoise masks and positions from `VideoLatentTools` / `AudioLatentTools` (torch, lazy)."""
    import torch
    from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
    from ltx_core.tools import AudioLatentTools, VideoLatentTools
    from ltx_core.types import AudioLatentShape, VideoLatentShape

    model_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    frames, height, width = VIDEO_GRID
    video_shape = VideoLatentShape(batch=batch, channels=config["in_channels"], frames=frames, height=height,
                                   width=width)
    video_tools = VideoLatentTools(patchifier=VideoLatentPatchifier(patch_size=1), target_shape=video_shape, fps=FPS)
    video_latent = torch.from_numpy(rng.standard_normal(tuple(video_shape.to_torch_shape())).astype(np.float32))
    video_state = video_tools.create_initial_state(torch.device("cpu"), model_dtype, video_latent.to(model_dtype))

    channels, mel_bins = audio_latent_layout(config.get("audio_in_channels", 128))
    audio_shape = AudioLatentShape(batch=batch, channels=channels, frames=AUDIO_FRAMES, mel_bins=mel_bins)
    audio_tools = AudioLatentTools(patchifier=AudioPatchifier(patch_size=1), target_shape=audio_shape)
    audio_latent = torch.from_numpy(rng.standard_normal(tuple(audio_shape.to_torch_shape())).astype(np.float32))
    audio_state = audio_tools.create_initial_state(torch.device("cpu"), model_dtype, audio_latent.to(model_dtype))

    # I2V-style mask: 0 on every token of latent frame 0, built in latent space and patchified officially.
    first_frame_mask = torch.ones(tuple(video_shape.mask_shape().to_torch_shape()))
    first_frame_mask[:, :, 0] = 0.0

    def as_np(tensor: torch.Tensor, dtype_np: type = np.float32) -> np.ndarray:
        return tensor.detach().to(torch.float32).numpy().astype(dtype_np)

    return {
        "video_latent": as_np(video_state.latent),
        "video_positions": as_np(video_state.positions),
        "video_mask": as_np(video_state.denoise_mask)[..., 0],
        "video_first_frame_mask": as_np(video_tools.patchifier.patchify(first_frame_mask))[..., 0],
        "audio_latent": as_np(audio_state.latent),
        "audio_positions": as_np(audio_state.positions),
        "audio_mask": as_np(audio_state.denoise_mask)[..., 0],
    }


def _round_to(array: np.ndarray, dtype: str) -> np.ndarray:
    """Round float32 values through `dtype` (bf16 via torch) and return float32."""
    if dtype == "float32":
        return array.astype(np.float32)
    import torch

    return torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16).to(torch.float32).numpy()


def _stream(latent, sigma, mask, positions, context, context_mask) -> StreamInputs:
    sigma = np.asarray(sigma, dtype=np.float32)
    return StreamInputs(latent=latent, sigma=sigma, timesteps=(sigma[:, None] * mask).astype(np.float32),
                        positions=positions, context=context, context_mask=context_mask)


def _take(stream: StreamInputs | None, index: slice) -> StreamInputs | None:
    if stream is None:
        return None
    return StreamInputs(**{f: (None if getattr(stream, f) is None else getattr(stream, f)[index])
                           for f in _STREAM_FIELDS})


def make_verify_cases(config: dict, seed: int, dtype: str = "float32") -> list[VerifyCase]:
    """Seeded parity cases for an audio-video transformer `config`.

    Shared inputs: video latent grid 3x4x6 (72 tokens) at 24 fps, 17 audio latent frames, 8 text tokens of
    width `context_dims(config)`. Cases (the perturbed ones reuse `plain`'s inputs so outputs compare
    directly): `plain` (batch 2, sigmas 0.7 / 0.3, left-padding context mask: sample 1 has its first 3
    tokens padded); `first_frame` (plain with denoise mask 0 on latent frame 0, so per-token timesteps
    differ); `distinct_sigmas` (audio sigmas 0.4 / 0.9 differ from video's); `stg` (skip video + audio
    self-attn in the last block for sample 0 only); `stg_whole_batch` (batch 1, sample 0 of plain, whole
    batch perturbed -> value passthrough); `av_isolated` (skip A2V + V2A, all blocks, both samples);
    `av_isolated_partial` (same, sample 1 only); `video_only` (audio None); `audio_only` (video None).

    `dtype="bfloat16"` mimics the bf16 pipelines: latents and contexts are rounded to bf16-representable
    values, and **video positions are quantised to bf16** (`VideoLatentTools` casts them to the model
    dtype, e.g. 1/24 s -> 0.041748); audio positions, sigmas and timesteps stay float32. Everything is
    stored as float32 (context masks int64).
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    rng = np.random.default_rng(seed)
    batch = 2
    base = _official_streams(config, batch, rng, dtype)
    video_dim, audio_dim = context_dims(config)
    video_context = _round_to(rng.standard_normal((batch, TEXT_TOKENS, video_dim)), dtype)
    audio_context = _round_to(rng.standard_normal((batch, TEXT_TOKENS, audio_dim)), dtype)
    context_mask = np.ones((batch, TEXT_TOKENS), dtype=np.int64)
    context_mask[1, :PADDED_TEXT_TOKENS] = 0
    sigma = np.array([0.7, 0.3], dtype=np.float32)

    def video(mask_key: str = "video_mask", sig=sigma) -> StreamInputs:
        return _stream(base["video_latent"], sig, base[mask_key], base["video_positions"], video_context,
                       context_mask)

    def audio(sig=sigma) -> StreamInputs:
        return _stream(base["audio_latent"], sig, base["audio_mask"], base["audio_positions"], audio_context,
                       context_mask)

    last = (config["num_layers"] - 1,)
    none: Perturbations = ((), ())
    stg = (("skip_video_self_attn", last), ("skip_audio_self_attn", last))
    isolate = (("skip_a2v_cross_attn", None), ("skip_v2a_cross_attn", None))
    plain = VerifyCase("plain", video(), audio(), none)
    return [
        plain,
        VerifyCase("first_frame", video("video_first_frame_mask"), audio(), none),
        VerifyCase("distinct_sigmas", video(), audio(np.array([0.4, 0.9], np.float32)), none),
        VerifyCase("stg", plain.video, plain.audio, (stg, ())),
        VerifyCase("stg_whole_batch", _take(plain.video, slice(0, 1)), _take(plain.audio, slice(0, 1)), (stg,)),
        VerifyCase("av_isolated", plain.video, plain.audio, (isolate, isolate)),
        VerifyCase("av_isolated_partial", plain.video, plain.audio, ((), isolate)),
        VerifyCase("video_only", plain.video, None, none),
        VerifyCase("audio_only", None, plain.audio, none),
    ]


def save_cases(cases: list[VerifyCase], path: str | os.PathLike) -> None:
    """Write cases to one `.npz` (no pickle): arrays under `"{i}.{stream}.{field}"` plus a JSON index.

    The index (key `"index"`, a 0-d unicode array) holds names, which streams / context masks exist and
    the perturbations (blocks as lists or null).
    """
    arrays: dict[str, np.ndarray] = {}
    index = []
    for i, case in enumerate(cases):
        entry = {"name": case.name, "streams": {},
                 "perturbations": [[[kind, None if blocks is None else list(blocks)] for kind, blocks in sample]
                                   for sample in case.perturbations]}
        for stream_name in ("video", "audio"):
            stream = getattr(case, stream_name)
            if stream is None:
                continue
            entry["streams"][stream_name] = [f for f in _STREAM_FIELDS if getattr(stream, f) is not None]
            for field in entry["streams"][stream_name]:
                arrays[f"{i}.{stream_name}.{field}"] = np.asarray(getattr(stream, field))
        index.append(entry)
    arrays["index"] = np.array(json.dumps(index))
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_cases(path: str | os.PathLike) -> list[VerifyCase]:
    """Read cases written by `save_cases` (`np.load(..., allow_pickle=False)`); arrays round-trip exactly."""
    with np.load(path, allow_pickle=False) as data:
        index = json.loads(str(data["index"]))
        cases = []
        for i, entry in enumerate(index):
            streams = {}
            for stream_name in ("video", "audio"):
                fields = entry["streams"].get(stream_name)
                streams[stream_name] = None if fields is None else StreamInputs(
                    **{f: (data[f"{i}.{stream_name}.{f}"] if f in fields else None) for f in _STREAM_FIELDS})
            perturbations = tuple(tuple((kind, None if blocks is None else tuple(blocks)) for kind, blocks in sample)
                                  for sample in entry["perturbations"])
            cases.append(VerifyCase(entry["name"], streams["video"], streams["audio"], perturbations))
    return cases
