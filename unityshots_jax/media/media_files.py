"""Inputs a story file names: reference / first-frame images (Pillow) and reference voices (PyAV), plus a WAV writer.

Every failure (missing file, not an image / no audio stream, undecodable data) is a `MediaError` naming the file.
"""

from __future__ import annotations

import os
import wave
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from unityshots_jax.media.mp4_writer import MediaError, atomic_output, check_output_path


def _existing_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a `Path`; MediaError naming it when it does not exist or is not a regular file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise MediaError(f"{what} {p}: file does not exist")
    if not p.is_file():
        raise MediaError(f"{what} {p}: not a regular file")
    return p


def load_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Load an image as RGB `float32 [H, W, 3]` in [0, 1] (EXIF orientation applied, alpha dropped).

    With `size=(H, W)` it is resized to exactly that size with Pillow's box (area-averaging) filter.
    """
    p = _existing_file(path, "image")
    if size is not None:
        if len(size) != 2 or min(size) < 1:
            raise MediaError(f"image {p}: size must be (H, W) with positive sides, got {size!r}")
        size = (int(size[0]), int(size[1]))
    try:
        with Image.open(p) as im:
            im.load()
            rgb = ImageOps.exif_transpose(im).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise MediaError(f"image {p}: cannot be decoded: {e}") from e
    if size is not None and (rgb.height, rgb.width) != size:
        rgb = rgb.resize((size[1], size[0]), resample=Image.Resampling.BOX)
    return np.asarray(rgb, dtype=np.float32) / 255.0


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Load the first audio stream of any file FFmpeg reads (WAV, MP3, FLAC, MP4, ...) as mono `float32 [N]` at
    `sample_rate`, resampled and mixed down by libswresample (`av.AudioResampler`, flushed at the end)."""
    p = _existing_file(path, "audio")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise MediaError(f"audio {p}: sample_rate must be a positive integer, got {sample_rate!r}")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"audio {p}: cannot be opened: {e}") from e
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            raise MediaError(f"audio {p}: no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=int(sample_rate))
        try:
            for frame in container.decode(container.streams.audio[0]):
                frame.pts = None  # let the resampler keep its own timeline (inputs may carry odd pts)
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except av.error.FFmpegError as e:
            raise MediaError(f"audio {p}: cannot be decoded: {e}") from e
    if not chunks or sum(c.shape[0] for c in chunks) == 0:
        raise MediaError(f"audio {p}: no audio samples could be decoded")
    return np.concatenate(chunks).astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike, audio, sample_rate: int) -> Path:
    """Write mono `float32 [N]` audio in [-1, 1] (clipped) as a 16-bit PCM WAV at `sample_rate`, atomically."""
    out = check_output_path(path, suffix=".wav")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise MediaError(f"audio: expected shape [N] (mono), got {list(audio.shape)}")
    if not np.issubdtype(audio.dtype, np.floating) or not np.all(np.isfinite(audio)):
        raise MediaError(f"audio: expected finite float samples, got {audio.dtype} with NaN/inf or non-float values")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise MediaError(f"sample_rate: expected a positive integer, got {sample_rate!r}")
    pcm = np.round(np.clip(audio.astype(np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    with atomic_output(out) as tmp, wave.open(str(tmp), "wb") as w:  # the WAV is closed before the move
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return out
