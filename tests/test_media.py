"""Media I/O: the story MP4 (streams, durations, colours, chapters, sidecar, atomic writes), input loaders, the
contact sheet."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from unityshots_jax.media import mp4_writer
from unityshots_jax.media.contact_sheet import write_contact_sheet
from unityshots_jax.media.media_files import load_audio, load_image, write_wav
from unityshots_jax.media.mp4_writer import (
    CHAPTERS_SUPPORTED,
    MediaError,
    ShotSegment,
    check_output_path,
    probe_mp4,
    read_mp4_audio,
    read_mp4_frames,
    sidecar_path,
    write_story_mp4,
)

pytestmark = pytest.mark.unit  # sub-second: the fast inner loop (python -m pytest -m unit)

FPS, SR = 8.0, 16000
DURATIONS = (2.0, 1.5, 1.0)
COLOURS = ((200, 40, 40), (40, 180, 60), (50, 70, 210))


def _story() -> tuple[np.ndarray, np.ndarray, list[ShotSegment]]:
    """Three shots of flat colour with a little texture: video `uint8 [36, 24, 24, 3]`, a 440 Hz tone `[72000]`."""
    frames, segments, start = [], [], 0.0
    for i, (dur, colour) in enumerate(zip(DURATIONS, COLOURS)):
        n = round(dur * FPS)
        block = np.broadcast_to(np.array(colour, np.uint8), (n, 24, 24, 3)).copy()
        block[:, ::6, ::6] = 128  # sparse grey dots, so the encoder sees some detail
        frames.append(block)
        segments.append(ShotSegment(i, start, dur, f"shot {i}: café"))
        start += dur
    video = np.concatenate(frames)
    t = np.arange(round(sum(DURATIONS) * SR)) / SR
    return video, (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32), segments


@pytest.fixture(scope="module")
def story_mp4(tmp_path_factory):
    """The written story: (path, video, audio, segments)."""
    video, audio, segments = _story()
    out = write_story_mp4(tmp_path_factory.mktemp("story") / "story.mp4", video, FPS, audio, SR, segments)
    return out, video, audio, segments


def test_probe_streams_and_durations(story_mp4):
    path = story_mp4[0]
    info = probe_mp4(path)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.video_frames == 36 and info.fps == pytest.approx(8.0)
    assert info.video_duration_s == pytest.approx(4.5, abs=1e-6)
    assert info.audio_duration_s == pytest.approx(4.5, abs=0.05)
    assert (info.sample_rate, info.audio_channels) == (SR, 1)
    assert info.width == info.height == 264  # 24 · 11, the smallest factor reaching 256
    assert info.width % 2 == 0 and info.height % 2 == 0
    assert sorted(os.listdir(path.parent)) == ["story.mp4", "story.shots.json"]  # no temporaries left


def test_frames_keep_segment_colours(story_mp4):
    path, video, _, _ = story_mp4
    frames = read_mp4_frames(path)
    assert frames.shape == (36, 264, 264, 3) and frames.dtype == np.uint8
    start = 0
    for dur, colour in zip(DURATIONS, COLOURS):
        n = round(dur * FPS)
        expected = video[start:start + n].reshape(-1, 3).mean(0)
        got = frames[start:start + n].reshape(-1, 3).astype(np.float64).mean(0)
        np.testing.assert_allclose(got, expected, atol=6.0)
        start += n


def test_audio_round_trip(story_mp4):
    path, _, audio, _ = story_mp4
    decoded, rate = read_mp4_audio(path)
    assert rate == SR and decoded.dtype == np.float32
    assert abs(decoded.shape[0] - audio.shape[0]) <= 0.05 * SR
    spectrum = np.abs(np.fft.rfft(decoded[SR // 2: SR // 2 + SR]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s window → 1 Hz bins
    assert np.sqrt(np.mean(decoded[SR:2 * SR] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


def test_sidecar_and_chapters(story_mp4):
    path, _, _, segments = story_mp4
    doc = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    assert doc["fps"] == 8.0 and doc["sample_rate"] == SR
    assert [s["index"] for s in doc["shots"]] == [0, 1, 2]
    assert [s["start_s"] for s in doc["shots"]] == [0.0, 2.0, 3.5]
    assert [s["end_s"] for s in doc["shots"]] == [2.0, 3.5, 4.5]
    assert doc["shots"][0]["caption"] == "shot 0: café"
    if not CHAPTERS_SUPPORTED:
        pytest.skip("this PyAV cannot write chapters")
    chapters = probe_mp4(path).chapters
    assert [(round(a, 3), round(b, 3)) for a, b, _ in chapters] == [(0.0, 2.0), (2.0, 3.5), (3.5, 4.5)]
    assert [title for _, _, title in chapters] == [s.caption for s in segments]


def test_check_output_path_errors(tmp_path):
    assert check_output_path(tmp_path / "ok.mp4") == tmp_path / "ok.mp4"
    assert not (tmp_path / "ok.mp4").exists()
    with pytest.raises(MediaError, match="does not exist"):
        check_output_path(tmp_path / "missing" / "out.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="is a directory"):
        check_output_path(tmp_path / "dir.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MediaError, match="not a directory"):
        check_output_path(tmp_path / "file" / "out.mp4")
    with pytest.raises(MediaError, match="extension must be .mp4"):
        check_output_path(tmp_path / "out.mkv")
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(MediaError, match="not writable"):
            check_output_path(ro / "out.mp4")


def test_invalid_inputs_leave_nothing(tmp_path):
    video, audio, segments = _story()
    out = tmp_path / "out.mp4"
    bad = audio.copy()
    bad[100] = np.nan
    with pytest.raises(MediaError, match="audio"):
        write_story_mp4(out, video, FPS, bad, SR, segments)
    with pytest.raises(MediaError, match="video"):
        write_story_mp4(out, video.astype(np.float32), FPS, audio, SR, segments)
    with pytest.raises(MediaError, match="segments"):
        write_story_mp4(out, video, FPS, audio, SR, segments[:2])
    assert os.listdir(tmp_path) == []


def test_failure_mid_encode_removes_temporaries(tmp_path, monkeypatch):
    video, audio, segments = _story()
    calls = {"n": 0}
    upscale = mp4_writer._upscale

    def failing(frame, scale):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("boom")
        return upscale(frame, scale)

    monkeypatch.setattr(mp4_writer, "_upscale", failing)
    with pytest.raises(RuntimeError, match="boom"):
        write_story_mp4(tmp_path / "out.mp4", video, FPS, audio, SR, segments)
    assert os.listdir(tmp_path) == []


def test_odd_size_and_explicit_scale(tmp_path):
    video = np.full((3, 5, 7, 3), 90, np.uint8)
    audio = np.zeros(SR * 3 // 8, np.float32)
    out = write_story_mp4(tmp_path / "odd.mp4", video, FPS, audio, SR, [ShotSegment(0, 0.0, 3 / FPS, "")], scale=3)
    info = probe_mp4(out)
    assert (info.height, info.width, info.video_frames) == (16, 22, 3)  # 15×21 padded to even


def test_load_image(tmp_path):
    rgba = np.zeros((8, 12, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255
    rgba[:, 6:, 2] = 255
    Image.fromarray(rgba).save(tmp_path / "img.png")
    img = load_image(tmp_path / "img.png")
    assert img.shape == (8, 12, 3) and img.dtype == np.float32 and img.min() >= 0.0 and img.max() <= 1.0
    np.testing.assert_allclose(img[0, 0], [1.0, 0.0, 0.0])
    small = load_image(tmp_path / "img.png", size=(4, 6))
    assert small.shape == (4, 6, 3)
    np.testing.assert_allclose(small[:, :3], np.broadcast_to([1.0, 0.0, 0.0], (4, 3, 3)), atol=1e-6)
    np.testing.assert_allclose(small[:, 3:], np.broadcast_to([1.0, 0.0, 1.0], (4, 3, 3)), atol=1e-6)


def test_load_audio_resamples(tmp_path):
    t = np.arange(8000 * 2) / 8000
    write_wav(tmp_path / "voice.wav", (0.4 * np.sin(2 * np.pi * 300.0 * t)).astype(np.float32), 8000)
    audio = load_audio(tmp_path / "voice.wav", 16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.shape[0] - 32000) <= 64
    spectrum = np.abs(np.fft.rfft(audio[4000:20000]))  # 1 s window → 1 Hz bins
    assert np.argmax(spectrum) == pytest.approx(300, abs=2)
    assert np.abs(audio).max() == pytest.approx(0.4, rel=0.05)


def test_corrupt_and_missing_inputs(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
    with pytest.raises(MediaError, match="junk.png"):
        load_image(junk)
    with pytest.raises(MediaError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(64))
    with pytest.raises(MediaError, match="noise.wav"):
        load_audio(noise, 16000)
    with pytest.raises(MediaError, match="does not exist"):
        load_audio(tmp_path / "nope.wav", 16000)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "still.png")
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(tmp_path / "still.png", 16000)
    with pytest.raises(MediaError, match="junk.mp4"):
        (tmp_path / "junk.mp4").write_bytes(os.urandom(256))
        probe_mp4(tmp_path / "junk.mp4")


def test_contact_sheet(tmp_path):
    frames = [np.full((16, 24, 3), 40 * i, np.uint8) for i in range(7)]
    labels = [f"shot {i}: a rather long caption that will not fit" for i in range(7)]
    out = write_contact_sheet(tmp_path / "sheet.png", frames, labels)
    with Image.open(out) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("RGB"))
    tile_h, tile_w = 16 * 8, 24 * 8  # scale 8: the short side reaches 128
    assert width == 4 + 5 * (tile_w + 4)
    assert height > 2 * tile_h and height < 2 * tile_h + 100  # two rows plus label strips
    assert tuple(pixels[4 + tile_h // 2, 4 + tile_w + 4 + tile_w // 2]) == (40, 40, 40)  # second tile
    assert os.listdir(tmp_path) == ["sheet.png"]
    with pytest.raises(MediaError, match="labels"):
        write_contact_sheet(tmp_path / "bad.png", frames, labels[:3])
