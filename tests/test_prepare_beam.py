"""Data preparation, part 2: the Beam pipeline on the DirectRunner, end to end on three synthetic clips (one good,
one corrupt, one with a missing caption) with the tiny LTX-2.3 stack: records that validate and load through the
trainer's grain reader, the two bad items in the dead-letter file with their reasons, the summary's counts; a rerun
after a simulated kill (one shard's file and marker gone) reproduces identical bytes, and a rerun with every shard
done prepares nothing; a bad manifest is one error line naming line and field (exit 2)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import grain
import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="the prepare extra (apache-beam) is not installed")

from helpers.ltx23_stack import AUDIO_C, GRID, TOKENS, VIDEO_C, build_ltx23_stack
from helpers.synthetic_clips import prepare_story_config, write_video

from unityshots_jax.cli import main
from unityshots_jax.data import decode_record, make_story_loader, open_story_source, validate_record
from unityshots_jax.prepare import shard_files
from unityshots_jax.prepare.beam_pipeline import BeamPrepareOptions, run_prepare

CFG = prepare_story_config()
SHOTS = [{"start": 0.0, "end": 1.0, "caption": "pip walks right", "dialogue": "ba lo"},
         {"start": 1.0, "end": 2.0, "caption": "a meadow in bright light"},
         {"start": 2.0, "end": 3.0, "caption": "pip jumps"}]
NO_CAPTION = [SHOTS[0], {"start": 1.0, "end": 2.0}, SHOTS[2]]
ITEMS = [{"id": "good", "video": "a.mp4", "shots": SHOTS,
          "characters": [{"name": "Pip", "reference_image": {"from_shot": 0}, "reference_voice": {"from_shot": 0}}]},
         {"id": "corrupt", "video": "corrupt.mp4", "shots": SHOTS},
         {"id": "no-caption", "video": "b.mp4", "shots": NO_CAPTION}]
BEAM_ARGS = ["--runner=DirectRunner", "--direct_num_workers=1"]
SHARDS = 4
SMOKE = str(Path(__file__).resolve().parents[1] / "configs" / "smoke.py")
CFG_DIMS = (32, 16)  # the request's context widths (build_ltx23_stack: CodecRequest(GRID, 32, 16, …))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(manifest path, pipeline options, output folder of a first run, its plan, summary and counters)."""
    root = tmp_path_factory.mktemp("prepare_beam")
    request = dataclasses.replace(build_ltx23_stack(str(root))[3], upsampler=None)
    write_video(str(root / "a.mp4"), [(0, 24), (1, 24), (1, 24)])  # a hard cut at 1 s, a continuous one at 2 s
    write_video(str(root / "b.mp4"), [(2, 24), (0, 24), (0, 24)])
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video" * 40)
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(item) for item in ITEMS) + "\n")
    options = BeamPrepareOptions("ltx23", request, CFG, num_shards=SHARDS)
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        plan, summary, counters = run_prepare(manifest, str(out), options, BEAM_ARGS)
    return manifest, options, out, plan, summary, counters


def _rerun(setup, out):
    manifest, options = setup[:2]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        return run_prepare(manifest, str(out), options, BEAM_ARGS)


def _snapshot(out) -> dict[str, bytes]:
    """Every final file under `out` (temporary files excluded; run.json is checked by the pipeline itself)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _good_shard(out) -> str:
    return shard_files.shard_name(shard_files.shard_of("good", SHARDS), SHARDS)


def test_records_validate_and_load_through_the_trainers_reader(setup):
    out, plan, counters = setup[2], setup[3], setup[5]
    assert counters == {"items_prepared": 1, "items_skipped": 2} and plan.done == () and plan.pending_items == 3
    dims = {"video_context_dim": CFG_DIMS[0], "audio_context_dim": CFG_DIMS[1]}
    source = open_story_source(str(out / "stories"), cfg=CFG, codec="ltx23", **dims)
    assert len(source) == 1
    record = decode_record(source[0])
    validate_record(record, CFG, **dims)
    assert record.story_id == "good" and record.n_frames.tolist() == [3, 3, 3]
    loader = make_story_loader(source, CFG, batch_size=1, seed=0, shuffle=False, num_epochs=1,
                               shard_options=grain.sharding.ShardOptions(0, 1), **dims)
    [batch] = list(loader)
    assert np.asarray(batch.video_latents).shape[:2] == (1, CFG.max_shots)
    assert sorted(p.name for p in out.glob("*.array_record")) == [_good_shard(out)]


def test_dead_letter_holds_the_bad_items_and_the_summary_counts(setup):
    out, summary = setup[2], setup[4]
    letters = [json.loads(line) for line in (out / "dead_letter.jsonl").read_text().splitlines()]
    assert [d["id"] for d in letters] == ["corrupt", "no-caption"]
    assert letters[0]["reason"].startswith("video: ") and "shots[1].caption: missing" in letters[1]["reason"]
    assert all(d["origin"].startswith(str(setup[0])) for d in letters)
    assert (summary["items"], summary["records"], summary["skipped"], summary["shots"]) == (3, 1, 2, 3)
    assert summary["seconds"] == pytest.approx(3 * 17 / 24)  # three shots of 17 frames at the codec's 24 fps
    assert [s["id"] for s in summary["skipped_items"]] == ["corrupt", "no-caption"]
    assert json.loads((out / "summary.json").read_text()) == summary


def test_rerun_after_a_kill_reproduces_identical_bytes(setup, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(setup[2], out)
    before = _snapshot(out)
    shard = shard_files.shard_of("good", SHARDS)
    (out / _good_shard(out)).unlink()  # killed before the shard's file and marker were in place …
    (out / "_done" / f"shard-{shard:05d}.json").unlink()
    (out / f"{_good_shard(out)}.tmp-deadbeef").write_bytes(b"half a shard")  # … leaving a temporary file behind
    plan, summary, counters = _rerun(setup, out)
    assert plan.pending_items == sum(shard_files.shard_of(i["id"], SHARDS) == shard for i in ITEMS)
    assert counters["items_prepared"] == 1 and summary == setup[4]
    after = {k: v for k, v in _snapshot(out).items() if ".tmp-" not in k}
    assert after.keys() == before.keys() and all(after[k] == before[k] for k in before)


def test_rerun_with_every_shard_done_does_no_work(setup, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(setup[2], out)
    before, mtime = _snapshot(out), (out / _good_shard(out)).stat().st_mtime_ns
    plan, _, counters = _rerun(setup, out)
    assert plan.pending_items == 0 and len(plan.done) == len(plan.shards) and not any(counters.values())
    assert _snapshot(out) == before and (out / _good_shard(out)).stat().st_mtime_ns == mtime


def test_other_options_into_the_same_folder_are_refused(setup):
    manifest, options, out = setup[:3]
    with pytest.raises(ValueError, match=r"run.json: .* \(num_shards differ\)"):
        run_prepare(manifest, str(out), dataclasses.replace(options, num_shards=2), BEAM_ARGS)


def test_cli_bad_manifest_is_one_line_naming_line_and_field(tmp_path, capsys):
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"video": "a.mp4", "shots": "detect"}\n{"video": "a.mp4", "shots": [{"start": "x", "end": 1}]}\n')
    code = main(["prepare-data", str(bad), "--out", str(tmp_path / "out"), "--config", SMOKE])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{bad}:2: shots[0].start: " in err[0], err
    assert not (tmp_path / "out").exists()


def test_cli_prepares_the_same_shards_as_the_api(setup, tmp_path, capsys):
    """`prepare-data` with a training config shaped like the tiny stack (smoke + overrides) and Beam options passed
    through writes the same shard bytes as `run_prepare`."""
    manifest, options, out = setup[:3]
    story = {"max_shots": 3, "video_frames": GRID[0], "height": GRID[1], "width": GRID[2], "latent_channels": VIDEO_C,
             "audio_frames": 19, "audio_channels": AUDIO_C, "text_tokens": TOKENS, "ltm_frames": 1, "stm_frames": 2,
             "ref_audio_frames": 20}
    overrides = [f"--config.story.{k}={v}" for k, v in story.items()] + [
        "--config.codec=ltx23", f"--config.transformer.audio_in_channels={AUDIO_C}",
        f"--config.transformer.audio_out_channels={AUDIO_C}"]
    cli_out = tmp_path / "cli_out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        code = main(["prepare-data", str(manifest), "--out", str(cli_out), "--config", SMOKE,
                     "--weights", options.request.weights, "--text-encoder", options.request.text_encoder_dir,
                     "--num-shards", str(SHARDS), "--direct_num_workers=1", *overrides])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "1 records, 2 skipped" in printed.out
    assert (cli_out / _good_shard(cli_out)).read_bytes() == (out / _good_shard(out)).read_bytes()
    assert (cli_out / "dead_letter.jsonl").read_bytes() == (out / "dead_letter.jsonl").read_bytes()
