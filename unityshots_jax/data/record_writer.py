"""Writing story records to sharded ArrayRecord files with a JSON manifest.

Files: `{prefix}-{i:05d}-of-{n:05d}.array_record` (one encoded `StoryRecord` per ArrayRecord record, group size 1
so any record reads without decompressing its neighbours) and `{prefix}.manifest.json`:

    {"format": "unityshots.story", "version": "1", "count": N, "shards": [{"path": "<basename>", "count": n_i}, …],
     "config": {shape fields …} | null, "config_fingerprint": "<16 hex>" | null, "codec": "<name>" | null}

"codec" names the codec bundle (`unityshots_jax.codecs`) whose latents and text contexts the records hold (the
writer encodes through `unityshots_jax.story.story_codecs.story_codecs(name, …)`, as generation decodes).

Records are dealt round-robin (record i → shard i mod n, streaming: nothing is held in memory), so the record
key j of the concatenated shards is not the input index. Every file (shards, then the manifest last) is written
under a temporary name and renamed into place, so a crash never leaves a half-written file under a final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable

from array_record.python.array_record_module import ArrayRecordWriter

from unityshots_jax.data.record_validation import validate_record
from unityshots_jax.data.story_record import FORMAT, VERSION, StoryRecord, encode_record
from unityshots_jax.story.story_config import StoryConfig

WRITER_OPTIONS = "group_size:1"
_SHAPE_FIELDS = (
    "max_shots", "video_frames", "height", "width", "latent_channels", "audio_frames", "audio_channels",
    "text_tokens", "stm_frames", "ref_image_frames",
)  # fmt: skip


def config_shapes(cfg: StoryConfig, video_context_dim: int, audio_context_dim: int) -> dict[str, int]:
    """The configuration fields a record's shapes depend on (gate and cut priors are applied at load time)."""
    shapes = {name: int(getattr(cfg, name)) for name in _SHAPE_FIELDS}
    shapes.update(video_context_dim=int(video_context_dim), audio_context_dim=int(audio_context_dim))
    return shapes


def config_fingerprint(cfg: StoryConfig, video_context_dim: int, audio_context_dim: int) -> str:
    """16 hex digits identifying `config_shapes` (records written for one fingerprint fit that config)."""
    text = json.dumps(config_shapes(cfg, video_context_dim, audio_context_dim), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def shard_paths(path_prefix: str, num_shards: int) -> list[str]:
    return [f"{path_prefix}-{i:05d}-of-{num_shards:05d}.array_record" for i in range(num_shards)]


def manifest_path(path_prefix: str) -> str:
    return f"{path_prefix}.manifest.json"


def write_records(
    path_prefix: str,
    records: Iterable[StoryRecord],
    num_shards: int,
    *,
    cfg: StoryConfig | None = None,
    video_context_dim: int | None = None,
    audio_context_dim: int | None = None,
    codec: str | None = None,
) -> list[str]:
    """Encode `records` into `num_shards` ArrayRecord files; returns the shard paths (in record-key order).

    With `cfg` (and both context dims) every record is validated first (`RecordError` aborts the write, and no
    final file is created) and the manifest carries the configuration fingerprint; `codec` is recorded as given.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards: must be ≥ 1, got {num_shards}")
    if cfg is not None and (video_context_dim is None or audio_context_dim is None):
        raise ValueError("write_records: validating against cfg needs video_context_dim and audio_context_dim")
    os.makedirs(os.path.dirname(os.path.abspath(path_prefix)), exist_ok=True)
    paths = shard_paths(path_prefix, num_shards)
    temps = [f"{p}.tmp-{os.getpid()}" for p in paths]
    writers, counts = [], [0] * num_shards
    try:
        for tmp in temps:
            writers.append(ArrayRecordWriter(tmp, WRITER_OPTIONS))
        for i, record in enumerate(records):
            if cfg is not None:
                validate_record(record, cfg, video_context_dim, audio_context_dim, source=f"input record {i}")
            writers[i % num_shards].write(encode_record(record))
            counts[i % num_shards] += 1
        for w in writers:
            w.close()
        if sum(counts) == 0:
            raise ValueError(f"write_records: no records to write to {path_prefix}")
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    except BaseException:
        for w in writers:
            if w.is_open():
                w.close()
        for tmp in temps:
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "count": sum(counts),
        "shards": [{"path": os.path.basename(p), "count": n} for p, n in zip(paths, counts)],
        "config": None if cfg is None else config_shapes(cfg, video_context_dim, audio_context_dim),
        "config_fingerprint": None if cfg is None else config_fingerprint(cfg, video_context_dim, audio_context_dim),
        "writer_options": WRITER_OPTIONS,
        "codec": codec,
    }
    _write_json_atomic(manifest_path(path_prefix), manifest)
    return paths


def _write_json_atomic(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_manifest(path_prefix_or_manifest: str) -> tuple[dict, list[str]]:
    """(manifest dict, absolute shard paths) from a path prefix or a `.manifest.json` path."""
    path = path_prefix_or_manifest
    if not path.endswith(".manifest.json"):
        path = manifest_path(path)
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path}: not a {FORMAT} v{VERSION} manifest")
    root = os.path.dirname(os.path.abspath(path))
    return manifest, [os.path.join(root, s["path"]) for s in manifest["shards"]]

