"""The files of a prepared data set and how they are written: shards, done markers, dead letters, summary.

    OUT/stories-{i:05d}-of-{n:05d}.array_record   story records of shard i (safetensors bytes, ordered by id)
    OUT/_done/shard-{i:05d}.json                   shard i is finished: its records' ids, shots and seconds, its
                                                  skipped items (written after the shard file is in place)
    OUT/run.json                                  what the set is prepared from (a rerun with other input refuses)
    OUT/stories.manifest.json                     the trainer's manifest (`data.record_writer` format)
    OUT/dead_letter.jsonl                         {"id", "reason", "origin"} per skipped item, by id
    OUT/summary.json                              counts, seconds, skipped items and why

Every file goes through Beam's `FileSystems` (local paths, gs://, s3://, hdfs://) under a temporary name and is
renamed into place, so a killed job never leaves a half-written file under a final name. An item's shard is a
stable hash of its id (`shard_of`), so the same manifest always deals the same items to the same shards.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid

from apache_beam.io.filesystems import FileSystems
from array_record.python.array_record_module import ArrayRecordWriter

from unityshots_jax.data.record_writer import WRITER_OPTIONS, config_fingerprint, config_shapes
from unityshots_jax.data.story_record import FORMAT, VERSION
from unityshots_jax.story.story_config import StoryConfig

PREFIX = "stories"
DONE_DIR = "_done"


def shard_of(item_id: str, num_shards: int) -> int:
    """The shard of an item: the first 8 bytes of sha256(id) modulo `num_shards` (stable across runs and hosts)."""
    return int(hashlib.sha256(item_id.encode()).hexdigest()[:16], 16) % num_shards


def shard_name(index: int, num_shards: int) -> str:
    return f"{PREFIX}-{index:05d}-of-{num_shards:05d}.array_record"


def marker_path(out_dir: str, index: int) -> str:
    return FileSystems.join(out_dir, DONE_DIR, f"shard-{index:05d}.json")


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` via a temporary sibling and a rename (a reader sees the old file or the whole new one)."""
    parent = os.path.dirname(path)
    if not FileSystems.exists(parent):
        try:
            FileSystems.mkdirs(parent)
        except Exception:  # another worker made it first (object stores have no folders: no error there)
            if not FileSystems.exists(parent):
                raise
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with FileSystems.create(tmp) as f:
        f.write(data)
    FileSystems.rename([tmp], [path])


def write_json_atomic(path: str, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as f:
        return f.read()


def read_json(path: str):
    return json.loads(read_bytes(path).decode())


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def encode_shard(blobs: list[bytes]) -> bytes:
    """The bytes of an ArrayRecord file holding `blobs` in order (group size 1, as `data.record_writer` writes);
    built in a local temporary file because the ArrayRecord writer takes local paths only."""
    fd, local = tempfile.mkstemp(suffix=".array_record")
    os.close(fd)
    try:
        writer = ArrayRecordWriter(local, WRITER_OPTIONS)
        for blob in blobs:
            writer.write(blob)
        writer.close()
        with open(local, "rb") as f:
            return f.read()
    finally:
        os.remove(local)


def check_run(out_dir: str, run: dict) -> None:
    """Write OUT/run.json, or check that an existing one matches `run` (a resume must see the same input and
    options); ValueError naming the differing keys otherwise."""
    path = FileSystems.join(out_dir, "run.json")
    if not exists(path):
        write_json_atomic(path, run)
        return
    old = read_json(path)
    if old != json.loads(json.dumps(run, sort_keys=True)):
        keys = sorted(k for k in set(old) | set(run) if old.get(k) != json.loads(json.dumps(run.get(k))))
        raise ValueError(f"{path}: {out_dir} was prepared from other input or options ({', '.join(keys)} differ); "
                         "use a new --out directory")


def finalize(out_dir: str, num_shards: int, cfg: StoryConfig, codec: str) -> dict:
    """Gather the done markers of all shards into the trainer's manifest, dead_letter.jsonl and summary.json;
    returns the summary. Shards that got no items have no marker and no file."""
    markers = [read_json(marker_path(out_dir, i)) for i in range(num_shards) if exists(marker_path(out_dir, i))]
    written = [m for m in markers if m["file"]]
    dims = next(((m["video_context_dim"], m["audio_context_dim"]) for m in written), None)
    manifest = {
        "format": FORMAT, "version": VERSION, "count": sum(m["count"] for m in written),
        "shards": [{"path": m["file"], "count": m["count"]} for m in written],
        "config": None if dims is None else config_shapes(cfg, *dims),
        "config_fingerprint": None if dims is None else config_fingerprint(cfg, *dims),
        "writer_options": WRITER_OPTIONS, "codec": codec,
    }  # fmt: skip
    write_json_atomic(FileSystems.join(out_dir, f"{PREFIX}.manifest.json"), manifest)
    skipped = sorted((s for m in markers for s in m["skipped"]), key=lambda s: s["id"])
    lines = "".join(json.dumps(s, sort_keys=True) + "\n" for s in skipped)
    write_atomic(FileSystems.join(out_dir, "dead_letter.jsonl"), lines.encode())
    records = [r for m in markers for r in m["records"]]
    summary = {
        "items": len(records) + len(skipped), "records": len(records), "skipped": len(skipped),
        "shots": sum(r["shots"] for r in records), "seconds": round(sum(r["seconds"] for r in records), 6),
        "shards": {"total": num_shards, "written": len(written)},
        "skipped_items": [{"id": s["id"], "reason": s["reason"]} for s in skipped],
    }  # fmt: skip
    write_json_atomic(FileSystems.join(out_dir, "summary.json"), summary)
    return summary
