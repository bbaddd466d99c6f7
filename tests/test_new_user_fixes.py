"""What a new user hit with `unityshots generate` (issue 13's list): outputs written together or not at all,
existing outputs protected, the seed range, duplicate story keys, the final message, --help / --version, the
contact-sheet labels under --cut-strength, Ctrl-C during sampling, and stereo audio in the story mp4."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers.toy_models import make_random_toy_model
from unityshots_jax.cli import build_parser, main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEADOW = os.path.join(REPO, "configs", "stories", "meadow_three_shots.yaml")


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> str:
    return make_random_toy_model(str(tmp_path_factory.mktemp("toy_model")), layers=1)


def _generate(capsys, toy_model, out, *extra):
    code = main(["generate", MEADOW, "-o", str(out), "--checkpoint", toy_model, "--steps", "2", "--quiet", *extra])
    stdout, stderr = capsys.readouterr()
    return code, stdout, stderr


def test_outputs_are_written_together_or_not_at_all(tmp_path, capsys, toy_model):
    (tmp_path / "story.png").mkdir()  # the contact sheet cannot be written
    code, _, err = _generate(capsys, toy_model, tmp_path / "story.mp4")
    assert code == 2 and "story.png" in err and "directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["story.png"]  # no mp4, no sidecar, no temporaries


def test_existing_outputs_need_overwrite(tmp_path, capsys, toy_model):
    out = tmp_path / "story.mp4"
    assert _generate(capsys, toy_model, out)[0] == 0
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert set(before) == {"story.mp4", "story.shots.json", "story.png"}
    code, _, err = _generate(capsys, toy_model, out)
    assert code == 2 and "already exists" in err and "--overwrite" in err
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    (tmp_path / "story.mp4").unlink()  # a leftover sidecar alone is protected too
    code, _, err = _generate(capsys, toy_model, out)
    assert code == 2 and "story.shots.json" in err
    code, stdout, err = _generate(capsys, toy_model, out, "--overwrite")
    assert code == 0, err
    assert "story.shots.json" in stdout and "story.png" in stdout


def test_final_message_names_the_encoded_size(tmp_path, capsys, toy_model):
    from unityshots_jax.media.mp4_writer import probe_mp4

    out = tmp_path / "story.mp4"
    code, stdout, err = _generate(capsys, toy_model, out)
    assert code == 0, err
    info = probe_mp4(out)
    assert f"video {info.width}x{info.height}" in stdout and "(24x24 upscaled)" in stdout
    assert "16000 Hz mono" in stdout


@pytest.mark.parametrize("seed", ["-1", str(2**63), "99999999999999999999999"])
def test_seed_outside_range_is_refused(tmp_path, capsys, toy_model, seed):
    code, _, err = _generate(capsys, toy_model, tmp_path / "story.mp4", "--seed", seed)
    assert code == 2 and "--seed" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("suffix, text", [
    (".yaml", "caption: a meadow\ncaption: a lake\nshots:\n  - duration: 2\n    caption: x\n"),
    (".json", '{"caption": "a meadow", "shots": [{"duration": 2, "caption": "x", "duration": 3}]}'),
])
def test_duplicate_story_keys_are_refused(tmp_path, suffix, text):
    from unityshots_jax.prompt.story_prompt import StoryPromptError, load_story_prompt

    path = tmp_path / f"story{suffix}"
    path.write_text(text)
    with pytest.raises(StoryPromptError, match="duplicate key '(caption|duration)'"):
        load_story_prompt(path)


def test_help_shows_defaults_and_version_exists(capsys):
    text = " ".join(build_parser()._subparsers._group_actions[0].choices["generate"].format_help().split())
    assert "(default: 20 for the toy world" in text and "(default: 0)" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("unityshots ")


def test_contact_sheet_labels_follow_cut_strength(tmp_path, monkeypatch, capsys, toy_model):
    from unityshots_jax.media import contact_sheet

    labels, original = [], contact_sheet.render_contact_sheet

    def spy(frames, shot_labels, **kw):
        labels.extend(shot_labels)
        return original(frames, shot_labels, **kw)

    monkeypatch.setattr(contact_sheet, "render_contact_sheet", spy)  # write_story imports it at call time
    code, _, err = _generate(capsys, toy_model, tmp_path / "story.mp4", "--cut-strength", "0.25")
    assert code == 0, err
    assert labels[0] == "1 first" and all(label.endswith(" b=0.25") for label in labels[1:]) and len(labels) == 3


def test_stereo_audio_in_the_story_mp4(tmp_path):
    from unityshots_jax.media.mp4_writer import ShotSegment, probe_mp4, write_story_mp4

    rate, fps = 48000, 24
    t = np.arange(rate) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)
    video = np.zeros((fps, 32, 32, 3), np.uint8)
    out = write_story_mp4(tmp_path / "s.mp4", video, fps, stereo, rate, [ShotSegment(0, 0.0, 1.0, "one")])
    info = probe_mp4(out)
    assert (info.audio_channels, info.sample_rate) == (2, 48000)
    assert info.audio_duration_s == pytest.approx(1.0, abs=0.03)
    assert json.loads((tmp_path / "s.shots.json").read_text())["audio_channels"] == 2


def test_ctrl_c_during_sampling_stops_at_once(tmp_path, toy_model):
    """SIGINT while the compiled story scan runs: the command ends within seconds (not when sampling would end),
    says so, exits 130 and writes nothing."""
    out = tmp_path / "story.mp4"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    # A shell that starts pytest in the background hands it SIGINT ignored, every child inherits that, and Python
    # then keeps it ignored; the child first takes the handler an interactive start gives, then runs the CLI.
    start = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
             "sys.argv = ['unityshots'] + sys.argv[1:]; runpy.run_module('unityshots_jax.cli', run_name='__main__')")
    proc = subprocess.Popen(
        [sys.executable, "-c", start, "generate", MEADOW, "-o", str(out), "--checkpoint", toy_model, "--steps", "1000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    buffered = ""
    while time.monotonic() < deadline and "generate (shots" not in buffered:  # the progress bar has started
        buffered += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
    assert "generate (shots" in buffered, buffered
    time.sleep(1.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 10
    assert "interrupted" in buffered + err
    assert not [p for p in tmp_path.iterdir()]
