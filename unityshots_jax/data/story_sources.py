"""Random-access sources of encoded story records (grain's `RandomAccessDataSource` protocol: len + getitem).

- `open_story_source(prefix | manifest | paths)`: grain's `ArrayRecordDataSource` over written shards.
- `RandomStorySource(cfg, n, seed, …)`: n random stories generated on demand (record i from seed and i), so
  smoke runs and tests need no files; records are returned encoded, like a file's, so the decode path is the same.
- `KeyedSource(source)`: wraps either so each element is `(label, bytes)`, the label naming the record (shard file
  and position where known) for error messages.

Every source has a deterministic `repr`: grain stores it in iterator states and refuses a state from another one.
"""

from __future__ import annotations

import os
from typing import Sequence

import grain
import numpy as np

from unityshots_jax.data.random_stories import random_story
from unityshots_jax.data.record_writer import config_fingerprint, read_manifest
from unityshots_jax.data.story_record import RecordError, encode_record
from unityshots_jax.story.story_config import StoryConfig


class RandomStorySource:
    """n random encoded stories; record i is `random_story(cfg, default_rng([seed, i]), …)`, so identical for
    a given (cfg, n, seed, dims, options) wherever and however often it is read."""

    def __init__(
        self,
        cfg: StoryConfig,
        n: int,
        seed: int,
        *,
        video_context_dim: int,
        audio_context_dim: int,
        dtype=np.float32,
        **story_kwargs,
    ):
        if n < 1:
            raise ValueError(f"RandomStorySource: n must be ≥ 1, got {n}")
        self.cfg, self.n, self.seed = cfg, int(n), int(seed)
        self.video_context_dim, self.audio_context_dim = int(video_context_dim), int(audio_context_dim)
        self.dtype, self.story_kwargs = np.dtype(dtype), dict(story_kwargs)

    def __len__(self) -> int:
        return self.n

    def record(self, key: int):
        """The decoded `StoryRecord` of key (what `self[key]` encodes)."""
        key = int(key)
        if not 0 <= key < self.n:
            raise IndexError(f"RandomStorySource: key {key} out of range [0, {self.n})")
        rng = np.random.default_rng([self.seed, key])
        return random_story(
            self.cfg, rng, video_context_dim=self.video_context_dim, audio_context_dim=self.audio_context_dim,
            dtype=self.dtype, story_id=f"random-{self.seed}-{key}", **self.story_kwargs,
        )  # fmt: skip

    def __getitem__(self, key) -> bytes:
        return encode_record(self.record(key))

    def __repr__(self) -> str:
        fp = config_fingerprint(self.cfg, self.video_context_dim, self.audio_context_dim)
        opts = ",".join(f"{k}={v!r}" for k, v in sorted(self.story_kwargs.items()))
        return f"RandomStorySource(n={self.n}, seed={self.seed}, config={fp}, dtype={self.dtype.name}, {opts})"


class KeyedSource:
    """`source[key]` → `(label, bytes)`; the label ("record 5 = position 2 of data-00001-of-00002.array_record")
    lets the decode step name the record in a `RecordError`."""

    def __init__(self, source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def describe(self, key: int) -> str:
        locate = getattr(self.source, "_reader_idx_and_position", None)  # array_record internals; optional
        paths = getattr(self.source, "paths", None)
        if locate is not None and paths:
            try:
                shard, position = locate(key)
                return f"record {key} = position {position} of {os.path.basename(str(paths[shard]))}"
            except (ValueError, IndexError, TypeError, AttributeError):
                pass
        return f"record {key} of {type(self.source).__name__}"

    def __getitem__(self, key) -> tuple[str, bytes]:
        key = int(key)
        return self.describe(key), self.source[key]

    def __repr__(self) -> str:
        return f"KeyedSource({self.source!r})"


def open_story_source(
    location: str | Sequence[str],
    *,
    cfg: StoryConfig | None = None,
    video_context_dim: int | None = None,
    audio_context_dim: int | None = None,
    codec: str | None = None,
) -> grain.sources.ArrayRecordDataSource:
    """grain's `ArrayRecordDataSource` over a written data set.

    location: a path prefix given to `write_records`, its `.manifest.json`, or an explicit list of shard paths.
    With a manifest and `cfg` (+ both dims), a manifest written for another configuration raises RecordError
    (field "config_fingerprint"), and so does one written through another codec bundle than `codec` (field
    "codec"; manifests without the entry are not checked); records are validated one by one when read in any case.
    """
    if isinstance(location, (list, tuple)):
        return grain.sources.ArrayRecordDataSource([os.fspath(p) for p in location])
    manifest, paths = read_manifest(location)
    if cfg is not None and (video_context_dim is None or audio_context_dim is None):
        raise ValueError("open_story_source: checking against cfg needs video_context_dim and audio_context_dim")
    if cfg is not None and manifest.get("config_fingerprint") is not None:
        want = config_fingerprint(cfg, video_context_dim, audio_context_dim)
        if manifest["config_fingerprint"] != want:
            raise RecordError(
                f"data set {location!r}", "config_fingerprint",
                f"written for {manifest['config']} (fingerprint {manifest['config_fingerprint']}), loading with fingerprint {want}",
            )  # fmt: skip
    written = manifest.get("codec")
    if codec is not None and written is not None and written != codec:
        raise RecordError(f"data set {location!r}", "codec", f"records encoded by codec {written!r}, the run uses {codec!r}")
    return grain.sources.ArrayRecordDataSource(paths)
