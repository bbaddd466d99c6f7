"""`unityshots generate` and `unityshots package`: story file → mp4 (+ contact sheet, shot list), on a random-init
toy-world model (1 layer) made once per session; every bad input refused with the field named and nothing written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers.toy_models import make_random_toy_model
from unityshots_jax.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEADOW = os.path.join(REPO, "configs", "stories", "meadow_three_shots.yaml")


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory) -> str:
    return make_random_toy_model(str(tmp_path_factory.mktemp("toy_model")), layers=1)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _story(tmp_path, shots, **extra) -> str:
    path = tmp_path / "story.json"
    path.write_text(json.dumps({"caption": "a meadow in bright light", "shots": shots, **extra}))
    return str(path)


def test_generate_writes_mp4_with_both_streams_and_shot_durations(tmp_path, capsys, toy_model):
    from unityshots_jax.media.mp4_writer import probe_mp4

    out = tmp_path / "story.mp4"
    code, stdout, err = _run(capsys, ["generate", MEADOW, "-o", str(out), "--checkpoint", toy_model, "--steps", "3", "--quiet"])
    assert code == 0, err
    info = probe_mp4(out)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.video_frames == 44 and info.fps == pytest.approx(8.0)  # 2 + 1.5 + 2 s at 8 fps
    assert info.audio_duration_s == pytest.approx(5.5, abs=0.03) and info.sample_rate == 16000
    shots = json.loads((tmp_path / "story.shots.json").read_text())["shots"]
    assert [s["duration_s"] for s in shots] == [2.0, 1.5, 2.0]
    assert [s["start_s"] for s in shots] == [0.0, 2.0, 3.5]
    if info.chapters:
        assert [round(c[1] - c[0], 3) for c in info.chapters] == [2.0, 1.5, 2.0]
    assert (tmp_path / "story.png").stat().st_size > 0
    assert "3 shots" in stdout and "5.5 s" in stdout


def test_same_seed_same_story_other_seed_differs(tmp_path, capsys, toy_model):
    """Generation is a pure function of (story, seed, steps): identical media for the same seed (the mp4s agree up to
    the H.264 encoder), different media for another seed."""
    from unityshots_jax.media.mp4_writer import read_mp4_frames
    from unityshots_jax.pipeline.generate import StoryGenerator
    from unityshots_jax.pipeline.story_conditioning import prepare_story
    from unityshots_jax.prompt.story_prompt import load_story_prompt
    from unityshots_jax.story.story_checkpoint import load_story_model

    prompt = load_story_prompt(MEADOW)
    model = load_story_model(toy_model, overrides={"max_shots": 3})
    gen = StoryGenerator(model)
    story = prepare_story(prompt, model.story, gen.codecs)
    a, b, c = (gen.generate([story], seed=s, steps=2)[0] for s in (1, 1, 2))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    assert [len(a.shot_audio(i)) for i in range(3)] == [32000, 24000, 32000]  # 2, 1.5, 2 s at 16 kHz
    assert np.array_equal(np.concatenate([a.shot_audio(i) for i in range(3)]), a.audio)
    assert np.abs(a.frames - c.frames).mean() > 0.01
    frames = []
    for name in ("x", "y"):
        argv = ["generate", MEADOW, "-o", str(tmp_path / f"{name}.mp4"), "--checkpoint", toy_model, "--steps", "2", "--seed", "1", "--quiet"]
        assert _run(capsys, argv)[0] == 0
        frames.append(read_mp4_frames(tmp_path / f"{name}.mp4").astype(np.float32))
    assert np.abs(frames[0] - frames[1]).mean() < 0.5


def test_references_first_frame_and_modes(tmp_path, capsys, toy_model):
    """r2v with a portrait and a voice clip, i2v from a first-frame image: files are read, encoded, used."""
    from PIL import Image

    from unityshots_jax.media.media_files import write_wav
    from unityshots_jax.toy_world.render import render_portrait, render_voice_clip
    from unityshots_jax.toy_world.world_spec import Character

    pip = Character("pip", "red", "striped", "square")
    Image.fromarray((render_portrait(pip) * 255).astype(np.uint8)).save(tmp_path / "pip.png")
    write_wav(tmp_path / "pip.wav", render_voice_clip(pip), 16000)
    shots = [
        {"duration": 1.0, "caption": "close-up. pip stands still", "mode": "r2v", "dialogue": "ba lo"},
        {"duration": 1.5, "caption": "wide shot. pip jumps", "mode": "i2v", "first_frame": "pip.png", "transition": "hard"},
    ]
    story = _story(tmp_path, shots, characters=[{"name": "pip", "description": "a red striped square",
                                                 "reference_image": "pip.png", "reference_voice": "pip.wav"}])
    code, _, err = _run(capsys, ["generate", story, "-o", str(tmp_path / "r.mp4"), "--checkpoint", toy_model, "--steps", "2", "--quiet"])
    assert code == 0, err
    from unityshots_jax.media.mp4_writer import read_mp4_frames

    frames = read_mp4_frames(tmp_path / "r.mp4")
    assert frames.shape[0] == 20
    # the i2v shot's first latent frame is the given image, exactly re-imposed (up to H.264): its first 4 frames
    first = frames[8].astype(np.float32) / 255.0
    target = np.asarray(Image.open(tmp_path / "pip.png").resize(first.shape[:2][::-1], Image.NEAREST), np.float32) / 255.0
    assert np.abs(first - target).mean() < 0.05


@pytest.mark.parametrize(
    "shots, field",
    [
        ([{"duration": 1.25, "caption": "wide shot. pip jumps"}], "shots[0].duration"),
        ([{"duration": 3.0, "caption": "wide shot. pip jumps"}], "shots[0].duration"),
        ([{"duration": 0.5, "caption": "wide shot. pip jumps"}], "shots[0].duration"),
        ([{"duration": -1, "caption": "wide shot. pip jumps"}], "shots[0].duration"),
        ([{"duration": 1.0, "caption": "x"}, {"duration": 1.0, "caption": "y", "transition": "dissolve-ish"}], "shots[1].transition"),
        ([{"duration": 1.0, "caption": "x", "mode": "i2v"}], "shots[0]"),
        ([{"duration": 1.0}], "shots[0].caption"),
        ([{"duration": 1.0, "caption": "x"}] * 10, "shots"),
    ],
)
def test_bad_story_refused_before_output(tmp_path, capsys, toy_model, shots, field):
    out = tmp_path / "out.mp4"
    code, _, err = _run(capsys, ["generate", _story(tmp_path, shots), "-o", str(out), "--checkpoint", toy_model, "--quiet"])
    assert code == 2 and field in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["story.json"]


def test_missing_reference_file_refused(tmp_path, capsys, toy_model):
    story = _story(tmp_path, [{"duration": 1.0, "caption": "x", "mode": "r2v"}],
                   characters=[{"name": "pip", "description": "a red solid square", "reference_image": "nope.png"}])
    code, _, err = _run(capsys, ["generate", story, "-o", str(tmp_path / "o.mp4"), "--checkpoint", toy_model])
    assert code == 2 and "characters[0].reference_image" in err and "nope.png" in err


@pytest.mark.parametrize(
    "argv, words",
    [
        (["-o", "{tmp}/missing_dir/out.mp4"], ["missing_dir"]),
        (["-o", "{tmp}/out.avi"], [".mp4"]),
        (["-o", "{tmp}/out.mp4", "--cut-strength", "1.5"], ["--cut-strength"]),
        (["-o", "{tmp}/out.mp4", "--steps", "0"], ["--steps"]),
        (["-o", "{tmp}/out.mp4", "--guidance", "0.5"], ["--guidance"]),
        (["-o", "{tmp}/out.mp4", "--checkpoint", "{tmp}/no_model"], ["no_model"]),
    ],
)
def test_bad_arguments_refused(tmp_path, capsys, argv, words):
    argv = [a.format(tmp=tmp_path) for a in argv]
    code, _, err = _run(capsys, ["generate", MEADOW, *argv, "--quiet"])
    assert code == 2
    for w in words:
        assert w in err
    assert list(tmp_path.iterdir()) == []


def test_model_without_toy_codec_says_what_is_missing(tmp_path, capsys, toy_model):
    from unityshots_jax.checkpoint.safetensors_io import SafetensorsFile
    from unityshots_jax.story.story_checkpoint import save_story_model, unflatten

    f = SafetensorsFile(os.path.join(toy_model, "model.safetensors"))
    params = unflatten({name: f.read(name) for name in f.keys()})
    save_story_model(str(tmp_path / "ltx"), json.loads(f.metadata["config"]), params, {"codec": "ltx"})
    code, _, err = _run(capsys, ["generate", MEADOW, "-o", str(tmp_path / "o.mp4"), "--checkpoint", str(tmp_path / "ltx")])
    assert code == 2 and "VAE" in err
    assert not (tmp_path / "o.mp4").exists()


def test_corrupt_checkpoint_names_tensor(tmp_path, capsys, toy_model):
    from unityshots_jax.checkpoint.safetensors_io import SafetensorsFile, write_safetensors

    f = SafetensorsFile(os.path.join(toy_model, "model.safetensors"))
    tensors = {k: f.read(k) for k in f.keys()}
    victim = sorted(tensors)[3]
    tensors[victim] = tensors[victim][..., :1]
    os.makedirs(tmp_path / "bad")
    write_safetensors(str(tmp_path / "bad" / "model.safetensors"), tensors, f.metadata)
    code, _, err = _run(capsys, ["generate", MEADOW, "-o", str(tmp_path / "o.mp4"), "--checkpoint", str(tmp_path / "bad")])
    assert code == 2 and victim in err


def test_readme_main_command_with_the_shipped_model(tmp_path, capsys):
    """The README's main job: the example story with the default (shipped) checkpoint → mp4 + png + shot list."""
    from unityshots_jax.story.story_checkpoint import DEFAULT_CHECKPOINT
    from unityshots_jax.media.mp4_writer import probe_mp4
    from unityshots_jax.story.story_checkpoint import load_story_model

    assert load_story_model(DEFAULT_CHECKPOINT).meta["codec"] == "toy_world"
    out = tmp_path / "story.mp4"
    code, stdout, err = _run(capsys, ["generate", MEADOW, "-o", str(out), "--steps", "4", "--quiet"])
    assert code == 0, err
    info = probe_mp4(out)
    assert info.video_frames == 44 and info.audio_duration_s == pytest.approx(5.5, abs=0.03)
    assert (tmp_path / "story.png").exists() and (tmp_path / "story.shots.json").exists()
