"""Data preparation, part 1 (per item): synthetic multi-shot mp4s with sound (moving coloured shapes, tones; a hard
cut and a continuous cut) and a JSONL manifest, prepared with a tiny random official-layout LTX-2.3 stack into story
records that the trainer's reader (grain `make_story_loader`) takes; detected cuts on the true frames; s_vis / s_aud
high at the hard cut and low at the continuous one; bad items skipped with their reasons; bad JSONL named by line and
field; the same input giving the same record bytes."""

from __future__ import annotations

import dataclasses
import json

import grain
import numpy as np
import pytest
from helpers.ltx23_stack import AUDIO_C, GRID, build_ltx23_stack
from helpers.synthetic_clips import RATE, SIZE, prepare_story_config
from helpers.synthetic_clips import scene_audio as _scene_audio
from helpers.synthetic_clips import write_silent as _write_silent
from helpers.synthetic_clips import write_video as _write_video

from unityshots_jax.data import StoryRecord, decode_record, encode_record, make_story_loader, validate_record
from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD
from unityshots_jax.media.media_files import write_wav
from unityshots_jax.prepare import ManifestError, PrepareOptions, SkippedItem, prepare_item, read_manifest
from unityshots_jax.prepare.media_decode import decode_clip
from unityshots_jax.prepare.shot_detection import detect_cuts
from unityshots_jax.story.shot_sequence import R2V

CFG = prepare_story_config()
SHOTS_A = [{"start": 0.0, "end": 1.0, "caption": "pip walks right", "dialogue": "ba lo"},
           {"start": 1.0, "end": 2.0, "caption": "a meadow in bright light"},
           {"start": 2.0, "end": 3.0, "caption": "pip jumps"}]
PIP = {"name": "Pip", "description": "a red striped square", "reference_image": {"from_shot": 0},
       "reference_voice": {"from_shot": 0}}


def _items() -> list[dict]:
    no_caption = [dict(s) for s in SHOTS_A]
    del no_caption[1]["caption"]
    overlap = [dict(s) for s in SHOTS_A]
    overlap[1]["start"] = 0.5
    outside = [dict(s) for s in SHOTS_A]
    outside[2]["end"] = 5.0
    return [
        {"id": "hard-continue", "video": "a.mp4", "caption": "a meadow", "shots": SHOTS_A, "characters": [PIP]},
        {"id": "detected", "video": "videos/b.mp4", "shots": "detect", "captions": ["pip walks", "pip jumps", "wide shot"],
         "characters": [{"name": "Pip", "reference_voice": "voice.wav"}]},
        {"id": "bad-voice", "video": "a.mp4", "shots": SHOTS_A,
         "characters": [{"name": "Pip", "reference_voice": "corrupt.mp4"}]},
        {"id": "corrupt", "video": "corrupt.mp4", "shots": SHOTS_A},
        {"id": "no-caption", "video": "a.mp4", "shots": no_caption},
        {"id": "bad-portrait", "video": "a.mp4", "shots": SHOTS_A,
         "characters": [{"name": "Pip", "reference_image": "broken.png"}]},
        {"id": "too-short", "video": "a.mp4", "shots": [{"start": 0.0, "end": 0.3, "caption": "pip"}]},
        {"id": "overlap", "video": "a.mp4", "shots": overlap},
        {"id": "outside", "video": "a.mp4", "shots": outside},
        {"id": "silent", "video": "silent.mp4", "shots": SHOTS_A[:2]},
        {"id": "bad-bucket", "video": "a.mp4", "shots": SHOTS_A, "bucket": "100x64x17"},
        {"id": "too-many-captions", "video": "videos/b.mp4", "shots": "detect", "captions": ["a", "b", "c", "d"]},
    ]


SKIP_REASONS = {
    "corrupt": "video: ",
    "no-caption": "shots[1].caption: missing",
    "bad-portrait": "characters[0].reference_image",
    "bad-voice": "characters[0].reference_voice",
    "too-short": "shots[0]: 0.300 s is too short: the short-term memory needs 2 latent frames",
    "overlap": "shots[1]: starts at 0.5 s, before shots[0]",
    "outside": "shots[2]: 2–5 s lies outside the video",
    "silent": "no audio stream",
    "bad-bucket": "bucket 100x64x17",
    "too-many-captions": "captions: 4 given, but 3 shots were detected",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """(manifest path, codecs, {item id: record or SkippedItem}) for the media and manifest written here."""
    from unityshots_jax.codecs.base import build_codecs

    root = tmp_path_factory.mktemp("prepare")
    request = dataclasses.replace(build_ltx23_stack(str(root))[3], upsampler=None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        codecs = build_codecs("ltx23", request)
    media = root / "media"
    (media / "videos").mkdir(parents=True)
    _write_video(str(media / "a.mp4"), [(0, 24), (1, 24), (1, 24)])  # hard cut at frame 24, continuous at 48
    _write_video(str(media / "videos" / "b.mp4"), [(0, 20), (1, 25), (2, 25)])  # hard cuts at frames 20 and 45
    _write_silent(str(media / "silent.mp4"))
    (media / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 40)
    (media / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    write_wav(media / "voice.wav", _scene_audio(2, 0, 18)[:, 0], RATE)  # 0.75 s: 18 of the 20 reference frames
    manifest = media / "manifest.jsonl"
    manifest.write_text("# synthetic stories\n" + "\n".join(json.dumps(item) for item in _items()) + "\n")
    items = read_manifest(manifest)
    return manifest, codecs, items, {item.item_id: prepare_item(item, codecs, CFG) for item in items}


def test_manifest_items_resolve_paths_against_its_folder(data):
    manifest, _, items, _ = data
    assert [i.item_id for i in items] == [item["id"] for item in _items()]
    first, detected = items[0], items[1]
    assert first.video == manifest.parent / "a.mp4" and first.origin == f"{manifest}:2"
    assert [(s.start, s.end) for s in first.shots] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    assert first.shots[0].dialogue == "ba lo" and first.characters[0].reference_image.index == 0
    assert detected.shots is None and detected.video == manifest.parent / "videos" / "b.mp4"


@pytest.mark.parametrize("line, field, reason", [
    ('{"video": "a.mp4", "shots": [{"start": 0, "end": 1', "(json)", "not valid JSON"),
    ('{"video": "a.mp4", "shots": [{"start": 0, "end": 1}, {"start": "x", "end": 2}]}', "shots[1].start", "number"),
    ('{"shots": "detect"}', "video", "required field is missing"),
    ('{"video": "a.mp4", "shots": "auto"}', "shots", 'expected a list of shots or "detect"'),
    ('{"video": "a.mp4", "shots": [{"start": 1.5, "end": 1.0}]}', "shots[0].end", "not after start"),
    ('{"video": "a.mp4", "shots": [{"start": 0, "end": 1, "cap": "x"}]}', "shots[0].cap", "unknown field"),
    (('{"video": "a.mp4", "shots": [{"start": 0, "end": 1}], "characters": [{"name": "A", "reference_voice": '
     '{"from_shot": 4}}]}'), "characters[0].reference_voice.from_shot", "shot 4 does not exist"),
    ('{"video": "a.mp4", "shots": "detect", "characters": [{"name": "A", "reference_image": {"from_shot": -1}}]}',
     "characters[0].reference_image.from_shot", "greater than or equal to 0"),
    ('{"video": "a.mp4", "shots": "detect", "characters": [{"name": "A", "reference_image": 5}]}',
     "characters[0].reference_image", 'expected a file path or {"from_shot": shot index}'),
    ('["a.mp4"]', "(item)", "expected a JSON object"),
])
def test_bad_jsonl_names_the_line_and_the_field(tmp_path, line, field, reason):
    path = tmp_path / "m.jsonl"
    path.write_text('{"video": "ok.mp4", "shots": "detect"}\n\n' + line + "\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert (err.value.line, err.value.field) == (3, field) and reason in err.value.reason
    assert str(err.value).startswith(f"{path}:3: {field}: ")


def test_duplicate_ids_and_story_folders(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"video": "x/a.mp4", "shots": "detect"}\n{"id": "a", "video": "b.mp4", "shots": "detect"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: id: duplicate id 'a' \(line 1\)"):
        read_manifest(path)
    (tmp_path / "s.yaml").write_text("caption: a meadow\nshots:\n  - {duration: 1.5, caption: pip walks}\n"
                                     "  - {duration: 1.0, caption: pip jumps, dialogue: ba}\n")
    with pytest.raises(ManifestError, match=r"s.yaml: video: no video next to the story file"):
        read_manifest(tmp_path)
    (tmp_path / "s.mp4").write_bytes(b"")
    [item] = read_manifest(tmp_path)
    assert (item.item_id, item.video, item.caption) == ("s", tmp_path / "s.mp4", "a meadow")
    assert [(s.start, s.end, s.caption, s.dialogue) for s in item.shots] == [
        (0.0, 1.5, "pip walks", None), (1.5, 2.5, "pip jumps", "ba")]


def test_detected_cuts_land_on_the_true_cut_frames(data):
    manifest = data[0]
    for name, truth in (("videos/b.mp4", [20, 45]), ("a.mp4", [24])):  # a's continuous cut at 48 is no cut
        clip = decode_clip(manifest.parent / name, RATE)
        assert clip.frames.shape[1:] == (*SIZE, 3) and clip.audio.shape[1] == 2
        cuts = detect_cuts(clip.frames)
        assert len(cuts) == len(truth) and all(abs(c - t) <= 1 for c, t in zip(cuts, truth)), (name, cuts)


def test_items_become_records_the_trainers_reader_takes(data):
    _, codecs, _, results = data
    records = [r for r in results.values() if isinstance(r, StoryRecord)]
    assert sorted(r.story_id for r in records) == ["detected", "hard-continue"]
    for record in records:
        validate_record(record, CFG, codecs.text.video_dim, codecs.text.audio_dim)
        assert record.video_latents.shape == (3, 3, *GRID[1:]) and record.n_frames.tolist() == [3, 3, 3]
        assert record.audio_latents.shape[::2] == (3, AUDIO_C) and (record.n_audio >= 17).all()
    loader = make_story_loader([encode_record(r) for r in records], CFG, video_context_dim=codecs.text.video_dim,
                               audio_context_dim=codecs.text.audio_dim, batch_size=2, seed=0, shuffle=False,
                               num_epochs=1, shard_options=grain.sharding.ShardOptions(0, 1))
    [batch] = list(loader)
    assert np.asarray(batch.video_latents).shape[:2] == (2, CFG.max_shots)
    detected = results["detected"]
    assert detected.cut_type.tolist() == [FIRST, HARD, HARD] and not detected.has_ref_image
    assert not detected.allowed_modes[:, R2V].any() and detected.ref_audio_mask.tolist() == [1] * 18 + [0] * 2


def test_signals_high_at_the_hard_cut_and_low_at_the_continuous_one(data):
    record = data[3]["hard-continue"]
    assert record.cut_type.tolist() == [FIRST, HARD, CONTINUE]
    s_vis, s_aud, s_beat = record.s_vis, record.s_aud, record.s_beat
    assert s_vis[0] == s_aud[0] == s_beat[0] == 0.0
    assert s_vis[1] > 0.9 and s_vis[2] < 0.1, s_vis
    assert s_aud[1] > 0.8 and s_aud[2] < 0.1, s_aud  # 0.5 → 0.05 amplitude is a 20 dB drop
    assert s_beat[1] == 1.0 and s_beat[2] < 1.0, s_beat  # the new tone's onset sits on the hard cut


def test_references_cut_from_a_shot_exclude_that_shot_from_r2v(data):
    record = data[3]["hard-continue"]
    assert record.has_ref_image and np.abs(record.ref_image).sum() > 0
    assert record.allowed_modes[:, R2V].tolist() == [False, True, True]
    assert record.ref_audio_mask.tolist() == [1] * CFG.ref_audio_frames


def test_bad_items_are_skipped_with_their_reasons(data):
    results = data[3]
    skipped = {k: v for k, v in results.items() if isinstance(v, SkippedItem)}
    assert sorted(skipped) == sorted(SKIP_REASONS)
    for item_id, needle in SKIP_REASONS.items():
        assert needle in skipped[item_id].reason, (item_id, skipped[item_id].reason)
        assert skipped[item_id].origin.startswith(str(data[0]))


def test_same_input_gives_identical_record_bytes(data):
    _, codecs, items, results = data
    again = prepare_item(items[0], codecs, CFG, PrepareOptions())
    assert encode_record(again) == encode_record(results["hard-continue"])
    assert decode_record(encode_record(again)).story_id == "hard-continue"
    half = prepare_item(items[0], codecs, CFG, PrepareOptions(latent_dtype="bfloat16"))
    assert half.video_latents.dtype.name == "bfloat16"
