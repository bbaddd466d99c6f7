"""The story MP4: H.264 video + AAC mono or stereo audio, one chapter per shot, a `.shots.json` sidecar; and reading it back.

Outputs are written to a hidden temporary file in the destination directory and moved into place with `os.replace`,
so a failed or interrupted write never leaves a half-written file under the requested name.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CHAPTERS_SUPPORTED = hasattr(av.container.OutputContainer, "set_chapters")
_LAYOUTS = {1: "mono", 2: "stereo"}


class MediaError(ValueError):
    """A media file cannot be written or read; the message names the file (or argument) and the cause."""


def check_output_path(path: str | os.PathLike, suffix: str = ".mp4") -> Path:
    """Check, before any compute, that `path` can be written: its directory exists and is writable, it is not a
    directory, and it ends with `suffix` (case-insensitive). Creates nothing; returns the path as a `Path`."""
    out = Path(path).expanduser()
    if out.suffix.lower() != suffix:
        raise MediaError(f"output {out}: extension must be {suffix}, got {out.suffix or 'none'!r}")
    if out.is_dir():
        raise MediaError(f"output {out}: is a directory")
    parent = out.parent
    if not parent.exists():
        raise MediaError(f"output {out}: directory {parent} does not exist")
    if not parent.is_dir():
        raise MediaError(f"output {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise MediaError(f"output {out}: directory {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a fresh temporary path next to `path`; on success move it onto `path` (`os.replace`), on any exception
    remove it. The temporary file is created with mode 0o666 less the umask, so the result gets normal permissions."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise MediaError(f"output {path}: cannot create a temporary file: {e.strerror or e}") from e
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sidecar_path(path: str | os.PathLike) -> Path:
    """The shot sidecar next to an MP4: `story.mp4` → `story.shots.json`."""
    return Path(path).expanduser().with_suffix(".shots.json")


@dataclass(frozen=True)
class StoryOutputs:
    """The three files one generated story becomes: the mp4, its `.shots.json` sidecar and the contact sheet."""

    mp4: Path
    sidecar: Path
    sheet: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return self.mp4, self.sidecar, self.sheet


def plan_story_outputs(path: str | os.PathLike, *, overwrite: bool = False) -> StoryOutputs:
    """Check, before any compute, every file a story will be written to (`story.mp4`, `story.shots.json`,
    `story.png`): each must be writable and not a directory, and none may exist unless `overwrite`."""
    mp4 = check_output_path(path)
    outputs = StoryOutputs(mp4, sidecar_path(mp4), mp4.with_suffix(".png"))
    for p in outputs.paths[1:]:
        if p.is_dir():
            raise MediaError(f"output {p}: is a directory (the story's {'sidecar' if p.suffix == '.json' else 'contact sheet'} goes there)")
    existing = [str(p) for p in outputs.paths if p.exists()]
    if existing and not overwrite:
        raise MediaError(f"output {', '.join(existing)}: already exists; pass --overwrite to replace it, or choose another name")
    return outputs


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[Path]) -> Iterator[tuple[Path, ...]]:
    """Temporary paths for several outputs at once; all are moved into place only when the block succeeds, none if
    it raises (the renames follow each other at the end, so a failure leaves no subset of new outputs behind)."""
    with contextlib.ExitStack() as stack:
        yield tuple(stack.enter_context(atomic_output(p)) for p in paths)


@dataclass(frozen=True)
class ShotSegment:
    """One shot on the story timeline: `index` (0-based), `start_s` and `duration_s` in seconds, its `caption`."""

    index: int
    start_s: float
    duration_s: float
    caption: str


@dataclass(frozen=True)
class MediaInfo:
    """What `probe_mp4` finds by decoding (0 / None for an absent stream); `chapters`: `(start_s, end_s, title)`s."""

    width: int
    height: int
    video_frames: int
    fps: float
    video_duration_s: float
    audio_duration_s: float
    sample_rate: int
    audio_channels: int
    video_codec: str | None
    audio_codec: str | None
    chapters: tuple


def default_scale(height: int, width: int, min_side: int = 256) -> int:
    """The smallest integer factor making both sides of an `height × width` frame at least `min_side` (≥ 1)."""
    return max(1, math.ceil(min_side / min(height, width)))


def encoded_size(height: int, width: int, scale: int | None = None) -> tuple[int, int]:
    """(height, width) px of the video `write_story_mp4` writes for `height × width` frames (upscaled, even sides)."""
    scale = default_scale(height, width) if scale is None else scale
    return height * scale + (height * scale) % 2, width * scale + (width * scale) % 2


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale `[H, W, 3]` → `[H·scale, W·scale, 3]`, then replicate the last row / column so both
    sides are even (yuv420p needs even dimensions)."""
    if scale > 1:
        frame = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


def _validate(video, fps, audio, sample_rate, segments, scale) -> tuple[np.ndarray, np.ndarray, int]:
    """Check the `write_story_mp4` arguments; return video `uint8 [T, H, W, 3]`, audio `float32 [N, channels]`
    clipped to [-1, 1], and the integer upscale factor."""
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or min(video.shape[:3]) < 1:
        raise MediaError(f"video: expected shape [T, H, W, 3] with T, H, W >= 1, got {list(video.shape)}")
    if video.dtype != np.uint8:
        raise MediaError(f"video: expected dtype uint8, got {video.dtype}")
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise MediaError(f"fps: expected a positive finite number, got {fps!r}")
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[0] < 1 or audio.shape[1] not in _LAYOUTS:
        raise MediaError(f"audio: expected shape [N] (mono) or [N, 1|2] (mono / stereo) with N >= 1, got {list(audio.shape)}")
    if not np.issubdtype(audio.dtype, np.floating) or not np.all(np.isfinite(audio)):
        raise MediaError(f"audio: expected finite float32 samples, got {audio.dtype} with NaN/inf or non-float values")
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise MediaError(f"sample_rate: expected a positive integer, got {sample_rate!r}")
    if scale is None:
        scale = default_scale(video.shape[1], video.shape[2])
    elif not (isinstance(scale, (int, np.integer)) and scale >= 1):
        raise MediaError(f"scale: expected an integer >= 1, got {scale!r}")
    if not segments:
        raise MediaError("segments: at least one shot segment is required")
    frame_s, total_s, expected_start = 1.0 / fps, video.shape[0] / fps, 0.0
    for seg in segments:
        if not isinstance(seg, ShotSegment):
            raise MediaError(f"segments: expected ShotSegment items, got {type(seg).__name__}")
        if not (math.isfinite(seg.duration_s) and seg.duration_s > 0):
            raise MediaError(f"segments: shot {seg.index} has non-positive duration {seg.duration_s}")
        if abs(seg.start_s - expected_start) > frame_s + 1e-9:
            raise MediaError(f"segments: shot {seg.index} starts at {seg.start_s} s, expected {expected_start:.4f} s")
        expected_start = seg.start_s + seg.duration_s
    seg_total = sum(seg.duration_s for seg in segments)
    if abs(seg_total - total_s) > frame_s + 1e-9:
        raise MediaError(f"segments: durations sum to {seg_total:.4f} s but the video lasts {total_s:.4f} s")
    return video, np.clip(audio.astype(np.float32), -1.0, 1.0), int(scale)


def _chapters(segments: Sequence[ShotSegment]) -> list[dict]:
    """Chapter entries (millisecond time base) for `OutputContainer.set_chapters`, one per shot."""
    return [
        {"id": i + 1, "start": round(seg.start_s * 1000), "end": round((seg.start_s + seg.duration_s) * 1000),
         "time_base": Fraction(1, 1000), "metadata": {"title": seg.caption or f"Shot {seg.index + 1}"}}
        for i, seg in enumerate(segments)
    ]


def _encode(tmp: Path, video: np.ndarray, rate: Fraction, audio: np.ndarray, sample_rate: int, scale: int,
            segments: Sequence[ShotSegment]) -> None:
    """Encode video `uint8 [T, H, W, 3]` and audio `float32 [N, channels]` into an MP4 at `tmp`."""
    height, width = _upscale(video[0], scale).shape[:2]
    with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        if CHAPTERS_SUPPORTED:
            container.set_chapters(_chapters(segments))
        vstream = container.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "veryfast"})
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.time_base = 1 / rate
        layout = _LAYOUTS[audio.shape[1]]
        astream = container.add_stream("aac", rate=sample_rate, layout=layout)
        n_frames, pos = video.shape[0], 0
        for t in range(n_frames + 1):  # interleaved: each frame, then the audio up to its end (all of it at the end)
            if t < n_frames:
                frame = av.VideoFrame.from_ndarray(_upscale(video[t], scale), format="rgb24")
                frame.pts = t
                container.mux(vstream.encode(frame))
            end = audio.shape[0] if t == n_frames else min(audio.shape[0], int((t + 1) * sample_rate / rate))
            if end > pos:  # any chunk size: PyAV re-buffers to the encoder's frame size (1024 for AAC)
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[pos:end].T), format="fltp", layout=layout)
                chunk.sample_rate, chunk.pts, chunk.time_base = sample_rate, pos, Fraction(1, sample_rate)
                container.mux(astream.encode(chunk))
                pos = end
        container.mux(vstream.encode(None))
        container.mux(astream.encode(None))


def write_story_mp4(path: str | os.PathLike, video, fps: float, audio, sample_rate: int,
                    segments: Sequence[ShotSegment], *, scale: int | None = None) -> Path:
    """Write the story: video `uint8 [T, H, W, 3]` at `fps` and audio `float32 [N]` (mono) or `[N, 2]` (stereo)
    in [-1, 1] at `sample_rate` (values outside are clipped), shots as `segments` (contiguous, summing to T/fps
    within a frame).

    Frames are upscaled nearest-neighbour by `scale` (default: the smallest factor making both sides >= 256) and
    padded to even sides, then encoded H.264 (libx264, yuv420p, crf 18) with one tick of 1/fps per frame; audio is
    AAC mono or stereo. Shots become MP4 chapters (when PyAV supports them) and always `sidecar_path(path)` JSON.
    Both files are written atomically. Returns the MP4 path."""
    out = check_output_path(path)
    with atomic_output(out) as tmp_mp4, atomic_output(sidecar_path(out)) as tmp_json:
        encode_story_mp4(tmp_mp4, tmp_json, video, fps, audio, sample_rate, segments, scale=scale, name=out)
    return out


def encode_story_mp4(mp4_path: Path, sidecar: Path, video, fps: float, audio, sample_rate: int,
                     segments: Sequence[ShotSegment], *, scale: int | None = None, name: Path | None = None) -> None:
    """`write_story_mp4` into the given (temporary) paths, without moving anything into place: for callers that
    commit several outputs together. `name` is the final path, for messages."""
    video, audio, scale = _validate(video, fps, audio, sample_rate, segments, scale)
    rate = Fraction(fps).limit_denominator(100_000)
    shots = [{"index": s.index, "start_s": s.start_s, "duration_s": s.duration_s, "end_s": s.start_s + s.duration_s,
              "caption": s.caption} for s in segments]
    doc = {"fps": float(fps), "sample_rate": int(sample_rate), "audio_channels": int(audio.shape[1]), "shots": shots}
    try:
        _encode(mp4_path, video, rate, audio, int(sample_rate), scale, segments)
    except av.error.FFmpegError as e:
        raise MediaError(f"output {name or mp4_path}: encoding failed: {e}") from e
    sidecar.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _open_input(path: str | os.PathLike):
    """Open a media file for reading; MediaError naming the file when it is missing or not a media file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MediaError(f"{p}: file does not exist")
    try:
        return av.open(str(p))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"{p}: cannot open as media: {e}") from e


def _decode_audio(container, path) -> tuple[np.ndarray, int, int]:
    """Decode the first audio stream → (mono `float32 [N]`, rate, channels); the samples are trimmed to the duration
    the container declares (AAC pads its last frame). Empty audio and rate 0 when there is no audio stream."""
    if not container.streams.audio:
        return np.zeros((0,), np.float32), 0, 0
    stream = container.streams.audio[0]
    rate, channels = stream.sample_rate, stream.channels
    chunks = []
    try:
        for frame in container.decode(stream):
            samples = frame.to_ndarray().astype(np.float32)
            if not frame.format.is_planar:  # packed: [1, n·C] interleaved
                samples = samples.reshape(-1, frame.layout.nb_channels).T
            chunks.append(samples.mean(axis=0))
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: audio cannot be decoded: {e}") from e
    mono = np.concatenate(chunks) if chunks else np.zeros((0,), np.float32)
    if stream.duration is not None and stream.time_base is not None:
        declared = round(float(stream.duration * stream.time_base) * rate)
        mono = mono[: max(declared, 0)]
    return mono, rate, channels


def _iter_video(container, path) -> Iterator[np.ndarray]:
    """Decode the first video stream → RGB frames `uint8 [H, W, 3]` one by one (none when there is no video)."""
    if not container.streams.video:
        return
    try:
        for frame in container.decode(container.streams.video[0]):
            yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as e:
        raise MediaError(f"{path}: video cannot be decoded: {e}") from e


def probe_mp4(path: str | os.PathLike) -> MediaInfo:
    """Decode `path` fully and describe it: frame size, decoded frame count, fps, durations (audio = decoded samples
    / rate, trimmed to the declared stream duration), codecs, chapters."""
    with _open_input(path) as container:
        chapters = tuple(
            (float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]), c["metadata"].get("title", ""))
            for c in container.chapters()
        )
        vs = container.streams.video[0] if container.streams.video else None
        aus = container.streams.audio[0] if container.streams.audio else None
        video_codec = vs.codec_context.name if vs is not None else None
        audio_codec = aus.codec_context.name if aus is not None else None
        fps = float(vs.average_rate or vs.guessed_rate or 0) if vs is not None else 0.0
        declared_s = float(vs.duration * vs.time_base) if vs is not None and vs.duration and vs.time_base else None
        n_frames, height, width = 0, 0, 0
        for frame in _iter_video(container, path):
            n_frames, (height, width) = n_frames + 1, frame.shape[:2]
    with _open_input(path) as container:
        audio, rate, channels = _decode_audio(container, path)
    video_s = declared_s if declared_s is not None else (n_frames / fps if fps else 0.0)
    return MediaInfo(
        width=width, height=height, video_frames=n_frames, fps=fps, video_duration_s=video_s,
        audio_duration_s=audio.shape[0] / rate if rate else 0.0, sample_rate=rate, audio_channels=channels,
        video_codec=video_codec, audio_codec=audio_codec, chapters=chapters,
    )


def read_mp4_frames(path: str | os.PathLike) -> np.ndarray:
    """All decoded video frames of `path` as RGB `uint8 [T, H, W, 3]`; MediaError when there is no video."""
    with _open_input(path) as container:
        frames = list(_iter_video(container, path))
    if not frames:
        raise MediaError(f"{path}: no video frames")
    return np.stack(frames)


def read_mp4_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The first audio stream of `path`, mixed down to mono: (`float32 [N]`, sample rate); MediaError when absent."""
    with _open_input(path) as container:
        audio, rate, _ = _decode_audio(container, path)
    if rate == 0:
        raise MediaError(f"{path}: no audio stream")
    return audio, rate
