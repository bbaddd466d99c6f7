"""Synthetic multi-shot mp4s with sound for the data-preparation tests: moving coloured squares and tones per
scene, hard cuts (a new scene) and continuous cuts (a scene that goes on), and a video without audio."""

from __future__ import annotations

import av
import numpy as np

from unityshots_jax.media.mp4_writer import ShotSegment, write_story_mp4

FPS, RATE, SIZE = 24, 48000, (128, 160)  # source videos: 24 fps, 48 kHz stereo, 128 × 160 px
# (background RGB, shape RGB, tone Hz, amplitude) per scene
SCENES = [((30, 60, 200), (220, 40, 40), 440.0, 0.5), ((230, 210, 60), (40, 160, 60), 660.0, 0.05),
          ((20, 120, 40), (250, 250, 250), 330.0, 0.3)]


def scene_frames(scene: int, start: int, count: int) -> np.ndarray:
    """uint8 `[count, H, W, 3]`: the scene's background with a 32 px square moving 3 px right and 2 px down per
    frame; frame numbers continue from `start` (a continuous cut keeps the motion going)."""
    bg, fg = SCENES[scene][:2]
    out = np.empty((count, *SIZE, 3), np.uint8)
    out[:] = bg
    for j in range(count):
        t = start + j
        y, x = 10 + (2 * t) % 80, 8 + (3 * t) % 120
        out[j, y:y + 32, x:x + 32] = fg
    return out


def scene_audio(scene: int, start: int, count: int) -> np.ndarray:
    """float32 `[count·RATE/FPS, 2]` tone of the scene, phase-continuous from frame `start`."""
    hz, amp = SCENES[scene][2:]
    n0, n = start * RATE // FPS, count * RATE // FPS
    t = np.arange(n0, n0 + n) / RATE
    wave = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([wave, wave], axis=1)


def write_video(path: str, parts: list[tuple[int, int]]) -> None:
    """An mp4 of `parts` = (scene, frames) in order; a scene that repeats continues its motion and tone."""
    frames, audio, done = [], [], {}
    for scene, count in parts:
        start = done.get(scene, 0)
        frames.append(scene_frames(scene, start, count))
        audio.append(scene_audio(scene, start, count))
        done[scene] = start + count
    total = sum(c for _, c in parts)
    write_story_mp4(path, np.concatenate(frames), FPS, np.concatenate(audio), RATE,
                    [ShotSegment(0, 0.0, total / FPS, "all")], scale=1)


def write_silent(path: str, count: int = 48) -> None:
    with av.open(path, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv420p"
        for frame in scene_frames(0, 0, count):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def prepare_story_config():
    """The story config the data-preparation tests prepare for: the tiny ltx23 stack's grid, 3 shots."""
    from helpers.ltx23_stack import AUDIO_C, GRID, TOKENS, VIDEO_C
    from unityshots_jax.story.story_config import StoryConfig

    return StoryConfig(max_shots=3, video_frames=GRID[0], height=GRID[1], width=GRID[2], latent_channels=VIDEO_C,
                       audio_frames=19, audio_channels=AUDIO_C, text_tokens=TOKENS, ltm_frames=1, stm_frames=2,
                       ref_audio_frames=20)
