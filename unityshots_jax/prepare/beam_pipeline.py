"""Data preparation, part 2: the Apache Beam pipeline behind `unityshots prepare-data` (DirectRunner locally; the
same pipeline on Dataflow, Flink or Spark).

    manifest items (sorted by id; items of shards already done are left out)
      → Reshuffle (spread over workers)
      → PrepareItems: codecs built once per worker (setup), `prepare_item` per item
            → (shard, ("record", id, safetensors bytes, shots, seconds, dims)) | (shard, ("skip", id, reason, origin))
      → GroupByKey(shard)
      → WriteShard: records ordered by id → OUT/stories-i-of-n.array_record, then OUT/_done/shard-i.json
      → Count.Globally (waits for every shard) → Finalize: manifest, dead_letter.jsonl, summary.json

Determinism: an item's shard is a stable hash of its id and a shard's records are ordered by id, so the same
manifest, codecs and options give the same bytes whatever the runner, worker count or bundle order. Resume: a shard
is finished when its marker exists (written after the shard file is renamed into place); a rerun leaves out the
items of finished shards and redoes the rest, which gives the same bytes again. Records travel between stages as
bytes (`encode_record`), never as pickles. See `shard_files` for the output layout.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import apache_beam as beam
from apache_beam.metrics import Metrics

from unityshots_jax.codecs.base import CodecRequest, build_codecs
from unityshots_jax.data.story_record import StoryRecord, encode_record
from unityshots_jax.prepare import shard_files
from unityshots_jax.prepare.clip_items import PrepareOptions, prepare_item
from unityshots_jax.prepare.manifest import ManifestItem, read_manifest
from unityshots_jax.story.story_config import StoryConfig

NAMESPACE = "unityshots.prepare"


@dataclasses.dataclass(frozen=True)
class BeamPrepareOptions:
    """What the pipeline prepares with: the codec bundle `codec` built from `request` on every worker, the story
    config `story` the records must fit, the per-item `prepare` options and the number of output shards."""

    codec: str
    request: CodecRequest
    story: StoryConfig
    prepare: PrepareOptions = dataclasses.field(default_factory=PrepareOptions)
    num_shards: int = 16

    def run_info(self, items: list[ManifestItem]) -> dict:
        """The run's identity (OUT/run.json): options and a fingerprint of the items; weights are named, not hashed."""
        prepare = dataclasses.asdict(self.prepare)
        prepare["bucket"] = None if self.prepare.bucket is None else str(self.prepare.bucket)
        items_text = "\n".join(repr(item) for item in items)
        return {
            "codec": self.codec, "num_shards": self.num_shards, "prepare": prepare,
            "story": json.loads(json.dumps(dataclasses.asdict(self.story), default=str)),
            "request": json.loads(json.dumps(dataclasses.asdict(self.request), default=str)),
            "items": len(items), "items_sha256": hashlib.sha256(items_text.encode()).hexdigest(),
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class PreparePlan:
    """What a run will do: all shard indices that hold items, those already done, and the items still to prepare."""

    shards: tuple[int, ...]
    done: tuple[int, ...]
    pending_items: int


class PrepareItems(beam.DoFn):
    """(shard, ManifestItem) → (shard, outcome): the record as safetensors bytes, or the reason it was skipped."""

    def __init__(self, options: BeamPrepareOptions):
        self.options = options
        self.codecs = None

    def setup(self):
        self.codecs = build_codecs(self.options.codec, self.options.request)
        self.prepared = Metrics.counter(NAMESPACE, "items_prepared")
        self.skipped = Metrics.counter(NAMESPACE, "items_skipped")

    def process(self, element):
        shard, item = element
        result = prepare_item(item, self.codecs, self.options.story, self.options.prepare)
        if not isinstance(result, StoryRecord):
            self.skipped.inc()
            yield shard, ("skip", result.item_id, result.reason, result.origin)
            return
        self.prepared.inc()
        video, text = self.codecs.video, self.codecs.text
        frames = [(int(n) - 1) * video.temporal_scale + 1 for n in result.n_frames if int(n) > 0]
        seconds = float(sum(frames) / video.fps)
        yield shard, ("record", result.story_id, encode_record(result), len(frames), seconds,
                      (int(text.video_dim), int(text.audio_dim)))


class WriteShard(beam.DoFn):
    """(shard, outcomes) → the shard file (records ordered by id; none when every item was skipped), then its done
    marker; yields the shard index."""

    def __init__(self, out_dir: str, num_shards: int):
        self.out_dir, self.num_shards = out_dir, num_shards

    def process(self, element):
        shard, outcomes = element
        outcomes = sorted(outcomes, key=lambda o: o[1])
        records = [o for o in outcomes if o[0] == "record"]
        name = shard_files.shard_name(shard, self.num_shards) if records else None
        if records:
            blob = shard_files.encode_shard([o[2] for o in records])
            shard_files.write_atomic(shard_files.FileSystems.join(self.out_dir, name), blob)
        dims = records[0][5] if records else (None, None)
        marker = {
            "shard": shard, "file": name, "count": len(records),
            "records": [{"id": o[1], "shots": o[3], "seconds": o[4]} for o in records],
            "skipped": [{"id": o[1], "reason": o[2], "origin": o[3]} for o in outcomes if o[0] == "skip"],
            "video_context_dim": dims[0], "audio_context_dim": dims[1],
        }  # fmt: skip
        shard_files.write_json_atomic(shard_files.marker_path(self.out_dir, shard), marker)
        yield shard


def plan(items: list[ManifestItem], out_dir: str, num_shards: int) -> tuple[PreparePlan, list]:
    """The plan and the pending (shard, item) pairs, sorted by id (items of done shards left out)."""
    pairs = sorted(((shard_files.shard_of(i.item_id, num_shards), i) for i in items), key=lambda p: p[1].item_id)
    shards = sorted({s for s, _ in pairs})
    done = [s for s in shards if shard_files.exists(shard_files.marker_path(out_dir, s))]
    pending = [(s, i) for s, i in pairs if s not in set(done)]
    return PreparePlan(tuple(shards), tuple(done), len(pending)), pending


def build_pipeline(p: beam.Pipeline, manifest: str | Path | list[ManifestItem], out_dir: str,
                   options: BeamPrepareOptions) -> PreparePlan:
    """Add the preparation of `manifest` (a path for `read_manifest`, or its items) into `out_dir` to pipeline
    `p`; returns the plan. ManifestError (naming line and field) for a bad manifest, before anything is written.

    Checks OUT/run.json first (ValueError when `out_dir` holds a run with other input or options). With every
    shard done, only the final step runs (it rewrites the same manifest, dead letters and summary).
    """
    items = list(manifest) if isinstance(manifest, (list, tuple)) else read_manifest(manifest)
    if options.num_shards < 1:
        raise ValueError(f"num_shards: must be ≥ 1, got {options.num_shards}")
    ids = [i.item_id for i in items]
    if len(set(ids)) != len(ids):
        raise ValueError("items: item ids must be unique (the shard of an item is a hash of its id)")
    shard_files.check_run(out_dir, options.run_info(sorted(items, key=lambda i: i.item_id)))
    the_plan, pending = plan(items, out_dir, options.num_shards)
    if pending:
        written = (p | "Items" >> beam.Create(pending, reshuffle=False)
                   | "Spread" >> beam.Reshuffle()
                   | "Prepare" >> beam.ParDo(PrepareItems(options))
                   | "ByShard" >> beam.GroupByKey()
                   | "WriteShards" >> beam.ParDo(WriteShard(out_dir, options.num_shards)))
    else:
        written = p | "NothingToDo" >> beam.Create([], reshuffle=False)
    finished = written | "AllShards" >> beam.combiners.Count.Globally()
    args = (out_dir, options.num_shards, options.story, options.codec)
    _ = finished | "Finalize" >> beam.Map(lambda _count, a=args: shard_files.finalize(*a))
    return the_plan


def run_prepare(manifest: str | Path | list[ManifestItem], out_dir: str, options: BeamPrepareOptions,
                beam_args: list[str] | None = None) -> tuple[PreparePlan, dict, dict]:
    """Build and run the pipeline (runner and its options from `beam_args`, default DirectRunner) and wait;
    returns (plan, summary.json, {counter name: value})."""
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    with beam.Pipeline(options=PipelineOptions(beam_args or [])) as p:
        the_plan = build_pipeline(p, manifest, out_dir, options)
    result = p.result
    counters = {c.key.metric.name: c.committed for c in result.metrics().query(MetricsFilter()
                                                                                .with_namespace(NAMESPACE))["counters"]}
    summary = shard_files.read_json(shard_files.FileSystems.join(out_dir, "summary.json"))
    return the_plan, summary, counters
