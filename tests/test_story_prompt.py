"""The story prompt format: the shipped examples, round trips, one error per bad story naming its field,
reference files, the composed shot texts and the boundary strengths."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import wave
from pathlib import Path

import pytest

from unityshots_jax.prompt.story_prompt import (
    MAX_SHOTS,
    StoryPrompt,
    StoryPromptError,
    compose_shot_texts,
    cut_strengths,
    load_story_prompt,
    parse_story_prompt,
    to_dict,
)

pytestmark = pytest.mark.unit  # sub-second: the fast inner loop (python -m pytest -m unit)

STORIES = Path(__file__).resolve().parents[1] / "configs" / "stories"
EXAMPLES = sorted(STORIES.glob("*"))


def base_story() -> dict:
    """A small valid story (no reference files) that the bad-input cases mutate."""
    return {
        "caption": "a meadow in bright light",
        "characters": [{"name": "pip", "description": "a red striped square"},
                       {"name": "zeb", "description": "a cyan solid diamond"}],
        "shots": [{"duration": 2, "caption": "wide shot. pip walks right", "transition": "first"},
                  {"duration": 1.5, "caption": "close-up. zeb jumps", "dialogue": "ba lo mi"},
                  {"duration": 1, "caption": "wide shot. pip stands still", "transition": "continue"}],
    }


def write_png(path: Path) -> Path:
    """A real 8×8 PNG written with Pillow."""
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


def write_wav(path: Path) -> Path:
    """A real 0.1 s mono 16-bit WAV written with the stdlib."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x01" * 1600)
    return path


def expect_error(data, field: str, **kwargs) -> StoryPromptError:
    """Parse `data` (check_files off unless given) and return the StoryPromptError, asserting its field."""
    kwargs.setdefault("check_files", False)
    with pytest.raises(StoryPromptError) as info:
        parse_story_prompt(data, **kwargs)
    assert info.value.field == field, str(info.value)
    assert str(info.value) == f"<story>: {field}: {info.value.reason}"
    return info.value


def test_examples_exist():
    assert [p.name for p in EXAMPLES] == ["lake_nine_shots.yaml", "meadow_three_shots.yaml", "street_cut_knob.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_load_and_round_trip(path):
    prompt = load_story_prompt(path)
    assert isinstance(prompt, StoryPrompt) and prompt.source == path.resolve()
    assert 1 <= len(prompt.shots) <= MAX_SHOTS
    assert prompt.shots[0].transition == "FIRST" and all(s.transition != "FIRST" for s in prompt.shots[1:])
    data = to_dict(prompt)
    assert json.loads(json.dumps(data)) == data
    assert parse_story_prompt(data) == dataclasses.replace(prompt, source=None)


def test_example_contents():
    meadow = load_story_prompt(STORIES / "meadow_three_shots.yaml")
    assert [s.duration for s in meadow.shots] == [2.0, 1.5, 2.0]
    assert [s.transition for s in meadow.shots] == ["FIRST", "HARD", "CONTINUE"]
    assert sum(s.dialogue is not None for s in meadow.shots) == 2 and len(meadow.characters) == 1
    lake = load_story_prompt(STORIES / "lake_nine_shots.yaml")
    assert len(lake.shots) == 9 and {s.transition for s in lake.shots} == {"FIRST", "HARD", "CONTINUE"}
    assert all(s.duration in (1.0, 1.5, 2.0) for s in lake.shots)
    street = load_story_prompt(STORIES / "street_cut_knob.json")
    assert len(street.shots) == 4 and [s.boundary_strength for s in street.shots].count(None) == 3


def test_defaults_and_normalisation():
    data = base_story()
    data["shots"][2]["transition"] = "Match Cut"
    data["shots"][2]["mode"] = " T2V "
    prompt = parse_story_prompt(data)
    assert [s.transition for s in prompt.shots] == ["FIRST", "HARD", "CONTINUE"]
    assert [s.mode for s in prompt.shots] == ["t2v"] * 3
    assert prompt.negative_caption == "" and prompt.source is None
    assert prompt.shots[1].dialogue == "ba lo mi" and prompt.shots[0].dialogue is None
    del data["shots"][0]["transition"]
    assert parse_story_prompt(data).shots[0].transition == "FIRST"


def _set(path: tuple, value):
    """A mutation that sets data[path...] = value."""
    def mutate(data):
        node = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return mutate


def _drop(path: tuple):
    """A mutation that deletes data[path...]."""
    def mutate(data):
        node = data
        for step in path[:-1]:
            node = node[step]
        del node[path[-1]]
    return mutate


BAD = [
    ("caption-missing", _drop(("caption",)), "caption"),
    ("caption-empty", _set(("caption",), "  "), "caption"),
    ("caption-number", _set(("caption",), 3), "caption"),
    ("negative-not-string", _set(("negative_caption",), ["x"]), "negative_caption"),
    ("unknown-top-key", _set(("style",), "noir"), "style"),
    ("version-2", _set(("version",), 2), "version"),
    ("version-bool", _set(("version",), True), "version"),
    ("shots-missing", _drop(("shots",)), "shots"),
    ("shots-empty", _set(("shots",), []), "shots"),
    ("shots-too-many", lambda d: d["shots"].extend([{"duration": 1, "caption": "x"}] * (MAX_SHOTS - 2)), "shots"),
    ("shots-not-list", _set(("shots",), {"duration": 1}), "shots"),
    ("shot-not-mapping", _set(("shots", 1), ["close-up"]), "shots[1]"),
    ("duration-string", _set(("shots", 1, "duration"), "1.5"), "shots[1].duration"),
    ("duration-bool", _set(("shots", 1, "duration"), True), "shots[1].duration"),
    ("duration-zero", _set(("shots", 1, "duration"), 0), "shots[1].duration"),
    ("duration-negative", _set(("shots", 1, "duration"), -1.0), "shots[1].duration"),
    ("duration-too-long", _set(("shots", 1, "duration"), 60.5), "shots[1].duration"),
    ("duration-inf", _set(("shots", 1, "duration"), float("inf")), "shots[1].duration"),
    ("duration-nan", _set(("shots", 1, "duration"), float("nan")), "shots[1].duration"),
    ("duration-missing", _drop(("shots", 2, "duration")), "shots[2].duration"),
    ("shot-caption-missing", _drop(("shots", 1, "caption")), "shots[1].caption"),
    ("shot-unknown-key", _set(("shots", 2, "fps"), 24), "shots[2].fps"),
    ("dialogue-number", _set(("shots", 1, "dialogue"), 5), "shots[1].dialogue"),
    ("transition-unknown", _set(("shots", 1, "transition"), "zoom"), "shots[1].transition"),
    ("transition-number", _set(("shots", 1, "transition"), 1), "shots[1].transition"),
    ("first-not-first", _set(("shots", 0, "transition"), "hard"), "shots[0].transition"),
    ("later-first", _set(("shots", 2, "transition"), "opening"), "shots[2].transition"),
    ("strength-high", _set(("shots", 1, "boundary_strength"), 1.5), "shots[1].boundary_strength"),
    ("strength-low", _set(("shots", 1, "boundary_strength"), -0.1), "shots[1].boundary_strength"),
    ("strength-string", _set(("shots", 1, "boundary_strength"), "0.5"), "shots[1].boundary_strength"),
    ("mode-unknown", _set(("shots", 1, "mode"), "v2v"), "shots[1].mode"),
    ("i2v-no-frame", _set(("shots", 1, "mode"), "i2v"), "shots[1].first_frame"),
    ("frame-on-t2v", _set(("shots", 1, "first_frame"), "f.png"), "shots[1].first_frame"),
    ("r2v-no-portrait", _set(("shots", 2, "mode"), "R2V"), "shots[2].mode"),
    ("characters-not-list", _set(("characters",), {"name": "pip"}), "characters"),
    ("character-not-mapping", _set(("characters", 0), "pip"), "characters[0]"),
    ("name-missing", _drop(("characters", 1, "name")), "characters[1].name"),
    ("name-two-words", _set(("characters", 0, "name"), "pip the square"), "characters[0].name"),
    ("name-digit-first", _set(("characters", 0, "name"), "9pip"), "characters[0].name"),
    ("name-duplicate", _set(("characters", 1, "name"), "Pip"), "characters[1].name"),
    ("description-empty", _set(("characters", 0, "description"), ""), "characters[0].description"),
    ("character-unknown-key", _set(("characters", 0, "age"), 3), "characters[0].age"),
    ("reference-image-number", _set(("characters", 0, "reference_image"), 1), "characters[0].reference_image"),
]


@pytest.mark.parametrize("mutate,field", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_story_names_the_field(mutate, field):
    data = base_story()
    mutate(data)
    error = expect_error(data, field)
    assert "\n" not in str(error) and "pydantic" not in str(error)


def test_top_level_not_a_mapping():
    expect_error([base_story()], "story")


def test_first_error_in_document_order():
    data = base_story()
    data["shots"][2]["duration"] = "x"
    data["shots"][0]["transition"] = "hard"  # a cross-field problem earlier in the document wins
    expect_error(data, "shots[0].transition")
    data = base_story()
    data["caption"] = ""
    data["shots"][1]["duration"] = -1
    expect_error(data, "caption")
    reordered = {"shots": data["shots"], "caption": data["caption"], "characters": data["characters"]}
    expect_error(reordered, "shots[1].duration")  # key order of the file, not of the schema
    data = base_story()
    data["shots"][1]["mode"] = "i2v"
    data["shots"][1]["caption"] = 7  # the missing first_frame sorts after the keys present in shots[1]
    expect_error(data, "shots[1].caption")


def _refs(tmp_path: Path) -> dict:
    """base_story() with a real portrait and voice for pip, an r2v shot and an i2v shot, paths relative."""
    (tmp_path / "portraits").mkdir()
    write_png(tmp_path / "portraits" / "pip.png")
    write_wav(tmp_path / "pip.wav")
    write_png(tmp_path / "s1.png")
    data = base_story()
    data["characters"][0].update(reference_image="portraits/pip.png", reference_voice="pip.wav")
    data["shots"][1].update(mode="i2v", first_frame="s1.png")
    data["shots"][2]["mode"] = "r2v"
    return data


def test_reference_files_load(tmp_path):
    data = _refs(tmp_path)
    prompt = parse_story_prompt(data, base_dir=tmp_path)
    pip = prompt.characters[0]
    assert pip.reference_image == (tmp_path / "portraits" / "pip.png").resolve()
    assert pip.reference_voice == (tmp_path / "pip.wav").resolve() and pip.reference_voice.is_absolute()
    assert prompt.shots[1].first_frame == (tmp_path / "s1.png").resolve()
    assert [s.mode for s in prompt.shots] == ["t2v", "i2v", "r2v"]
    assert to_dict(prompt)["characters"][0]["reference_image"] == str((tmp_path / "portraits" / "pip.png").resolve())
    story = tmp_path / "story.yaml"
    story.write_text(json.dumps(data))  # JSON is YAML
    loaded = load_story_prompt(story)
    assert dataclasses.replace(loaded, source=None) == prompt
    written = to_dict(loaded)
    assert written["characters"][0]["reference_image"] == "portraits/pip.png"
    assert parse_story_prompt(written, base_dir=tmp_path) == prompt
    assert parse_story_prompt(to_dict(prompt)) == prompt  # absolute paths round-trip from anywhere


@pytest.mark.parametrize("field,kind", [("characters[0].reference_image", "image"),
                                        ("characters[0].reference_voice", "audio"),
                                        ("shots[1].first_frame", "image")])
@pytest.mark.parametrize("problem", ["missing", "corrupt", "directory"])
def test_bad_reference_file_names_the_field(tmp_path, field, kind, problem):
    data = _refs(tmp_path)
    target = tmp_path / "bad.bin"
    if problem == "corrupt":
        target.write_bytes(os.urandom(512))
    elif problem == "directory":
        target.mkdir()
    entry = data["characters"][0] if field.startswith("characters") else data["shots"][1]
    entry[field.rsplit(".", 1)[1]] = "bad.bin"
    error = expect_error(data, field, base_dir=tmp_path, check_files=True)
    assert error.reason.startswith(f"{target.resolve()}: ")
    expected = {"missing": "not found", "corrupt": "cannot decode", "directory": "not a regular file"}[problem]
    assert expected in error.reason
    parse_story_prompt(data, base_dir=tmp_path, check_files=False)  # the schema itself is fine


def test_image_is_not_a_voice(tmp_path):
    data = _refs(tmp_path)
    data["characters"][0]["reference_voice"] = "s1.png"
    error = expect_error(data, "characters[0].reference_voice", base_dir=tmp_path, check_files=True)
    assert "audio" in error.reason


def test_load_errors(tmp_path):
    def load_error(name: str, text: str | None) -> StoryPromptError:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        with pytest.raises(StoryPromptError) as info:
            load_story_prompt(path)
        assert str(info.value) == f"{path}: {info.value.field}: {info.value.reason}"
        return info.value

    assert load_error("story.txt", "caption: x").field == "story"
    assert "extension" in load_error("story.txt", "caption: x").reason
    assert load_error("absent.yaml", None).reason == "file not found"
    assert load_error("bad.yaml", "caption: [unclosed\nshots: 1").reason.startswith("invalid YAML")
    assert load_error("bad.json", '{"caption": "x",}').reason.startswith("invalid JSON")
    assert load_error("empty.yml", "").field == "story"
    assert load_error("list.yaml", "- caption: x\n").field == "story"
    evil = "!!python/object/apply:os.system ['echo pwned']\n"
    error = load_error("evil.yaml", evil)
    assert error.field == "story" and "python/object" in error.reason
    tagged = "caption: !!python/object:pathlib.Path {}\nshots: [{duration: 1, caption: x}]\n"
    assert load_error("tagged.yaml", tagged).field == "story"
    nested = "caption: x\nshots:\n  - duration: '2'\n    caption: y\n"
    error = load_error("nested.yml", nested)
    assert error.field == "shots[0].duration" and "string" in error.reason


def test_compose_shot_texts():
    data = base_story()
    data["caption"] = "  a meadow   in bright light. "
    data["characters"][1]["description"] = "a cyan solid diamond."
    data["shots"][2]["dialogue"] = "  ko   ta ne "
    texts = compose_shot_texts(parse_story_prompt(data))
    assert texts == [
        ("a meadow in bright light. pip is a red striped square. zeb is a cyan solid diamond. "
         "wide shot. pip walks right"),
        "close-up. zeb jumps. speaking: ba lo mi",
        "wide shot. pip stands still. speaking: ko ta ne",
    ]
    data["characters"] = []
    data["shots"][0]["dialogue"] = "hi!"
    assert compose_shot_texts(parse_story_prompt(data))[0] == (
        "a meadow in bright light. wide shot. pip walks right. speaking: hi!")


def test_cut_strengths():
    data = base_story()
    prompt = parse_story_prompt(data)
    assert cut_strengths(prompt) == [0.0, 1.0, 0.4]
    assert cut_strengths(prompt, priors=(0.1, 0.5, 0.9)) == [0.1, 0.9, 0.5]
    data["shots"][1]["boundary_strength"] = 0.25
    data["shots"][0]["boundary_strength"] = 0.9  # ignored: the first shot has no boundary
    prompt = parse_story_prompt(data)
    assert cut_strengths(prompt) == [0.0, 0.25, 0.4]
    assert cut_strengths(prompt, override=0.6) == [0.0, 0.6, 0.6]
    assert cut_strengths(prompt, override=0) == [0.0, 0.0, 0.0]
    for bad in (1.5, -0.2, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match="--cut-strength"):
            cut_strengths(prompt, override=bad)


def test_parse_does_not_mutate_input():
    data = base_story()
    before = copy.deepcopy(data)
    parse_story_prompt(data)
    assert data == before
