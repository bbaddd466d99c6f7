"""Decoding one item's media with PyAV: the whole clip's frames with their times, and its audio at a fixed rate.

An item is one multi-shot clip (seconds to a few minutes), decoded whole into memory; the frames stay uint8 until a
shot is cut out and resized, so a 60 s 1080p clip takes about 9 GB — split longer films before preparing them.
Every failure is a `MediaDecodeError` whose message names the file and the cause (the caller turns it into a
skipped item).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import numpy as np


class MediaDecodeError(ValueError):
    """A media file that cannot be used: missing, not a media file, no video / audio stream, nothing decodable."""


@dataclasses.dataclass(frozen=True)
class DecodedClip:
    """frames uint8 `[T, H, W, 3]` (RGB) shown at `times` float64 `[T]` seconds from the first frame; `fps` the
    stream's average rate; audio float32 `[N, channels]` in [−1, 1] at `sample_rate`, aligned so that sample 0 is
    at time 0 of the frames."""

    frames: np.ndarray
    times: np.ndarray
    fps: float
    audio: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (the last frame shown for one frame period)."""
        return float(self.times[-1] + 1.0 / self.fps) if len(self.times) else 0.0


def _open(path: Path):
    if not path.is_file():
        raise MediaDecodeError(f"{path}: file does not exist")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaDecodeError(f"{path}: not a readable media file ({exc})") from None


def _decode_video(path: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(frames uint8 `[T, H, W, 3]`, times `[T]` s from the first frame, fps, the first frame's time on the file's
    clock)."""
    with _open(path) as container:
        if not container.streams.video:
            raise MediaDecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(frame.time if frame.time is not None else len(times) / max(fps, 1e-9))
        except av.error.FFmpegError as exc:
            raise MediaDecodeError(f"{path}: the video stream does not decode ({exc})") from None
    if not frames or fps <= 0:
        raise MediaDecodeError(f"{path}: no decodable video frames")
    times_arr = np.asarray(times, np.float64)
    order = np.argsort(times_arr, kind="stable")
    first = float(times_arr[order[0]])
    return np.stack([frames[i] for i in order]), times_arr[order] - first, fps, first


def _decode_audio(path: Path, sample_rate: int, channels: int, start: float) -> np.ndarray:
    """The first audio stream as float32 `[N, channels]` at `sample_rate`, shifted so sample 0 is at time `start`
    (s, the first video frame's time on the file's clock)."""
    layout = {1: "mono", 2: "stereo"}[channels]
    with _open(path) as container:
        if not container.streams.audio:
            raise MediaDecodeError(f"{path}: no audio stream (training stories need their sound)")
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=int(sample_rate))
        chunks, first = [], None
        try:
            for frame in container.decode(container.streams.audio[0]):
                first = frame.time if first is None else first
                frame.pts = None  # the resampler keeps its own timeline
                chunks += [out.to_ndarray() for out in resampler.resample(frame)]
            chunks += [out.to_ndarray() for out in resampler.resample(None)]
        except av.error.FFmpegError as exc:
            raise MediaDecodeError(f"{path}: the audio stream does not decode ({exc})") from None
    if not chunks:
        raise MediaDecodeError(f"{path}: no decodable audio samples")
    audio = np.concatenate(chunks, axis=1).T.astype(np.float32)  # [N, channels]
    offset = round(((first or 0.0) - start) * sample_rate)  # audio starting after / before the first frame
    if offset > 0:
        audio = np.concatenate([np.zeros((offset, channels), np.float32), audio])
    elif offset < 0:
        audio = audio[-offset:]
    return np.clip(audio, -1.0, 1.0)


def decode_clip(path: str | Path, sample_rate: int, channels: int = 2) -> DecodedClip:
    """Decode `path`: every video frame (RGB, presentation order) and the first audio stream resampled to
    `sample_rate` with `channels` (1 or 2). MediaDecodeError naming the file and the cause otherwise."""
    path = Path(path)
    if channels not in (1, 2):
        raise ValueError(f"channels: expected 1 or 2, got {channels}")
    frames, times, fps, first_frame = _decode_video(path)
    audio = _decode_audio(path, sample_rate, channels, first_frame)
    if len(audio) == 0:
        raise MediaDecodeError(f"{path}: the audio stream is empty")
    return DecodedClip(frames, times, fps, audio, int(sample_rate))
