"""The training input pipeline: a grain `DataLoader` of fixed-shape `StoryBatch`es, and its iterator state.

    source (ArrayRecord shards | RandomStorySource; encoded records)
      → KeyedSource (record label for errors)
      → IndexSampler: this host's shard (contiguous key range), shuffled per epoch with `seed`, epochs repeated
      → DecodeStory: decode_record + validate_record + pad_story
      → Batch(batch_size per host, drop_remainder) with stack_examples → StoryBatch `[B, …]`

Determinism: the batches depend only on (source, cfg, seed, shard options, batch size); the worker count does not
change which records a host sees.

Bad data is an error, not a skip: a corrupt or mismatched record raises `RecordError` naming it (story id and
shard/position) from `next(iterator)`. Silently dropping records would change the epoch length, break the
equality of per-host batch counts that synchronous multi-host training relies on, and hide converter bugs; fix
or remove the record with the tools that wrote it (`write_records(…, cfg=…)` validates before writing).

Iterator state (which records come next) is grain's JSON: `iterator.get_state()` / `set_state(bytes)`;
`save_iterator_state` / `restore_iterator_state` write and read it as `process_{i}-of-{n}.json` in a directory
(the file name grain's own orbax handler uses); in an orbax `CheckpointManager`, use the item handler
`IteratorHandler()` with `IteratorSave(it)` / `IteratorRestore(it)` args (grain's `grain.checkpoint` classes).
A state restores only into a loader with the same sampler (seed, shard options, record count), worker count and
source repr; grain raises ValueError otherwise.
"""

from __future__ import annotations

import os

import grain
import jax
import numpy as np

from unityshots_jax.data.record_validation import validate_record
from unityshots_jax.data.story_batch import StoryBatch, pad_story, stack_examples
from unityshots_jax.data.story_record import decode_record
from unityshots_jax.data.story_sources import KeyedSource
from unityshots_jax.story.story_config import StoryConfig

IteratorHandler = grain.checkpoint.CheckpointHandler
IteratorSave = getattr(grain.checkpoint, "CheckpointSave", None)  # None when orbax is not installed
IteratorRestore = getattr(grain.checkpoint, "CheckpointRestore", None)


class DecodeStory(grain.transforms.Map):
    """`(label, bytes)` → a padded example (`StoryBatch` without the batch axis); RecordError on bad records."""

    def __init__(self, cfg: StoryConfig, video_context_dim: int, audio_context_dim: int, latent_dtype=np.float32):
        self.cfg, self.latent_dtype = cfg, np.dtype(latent_dtype)
        self.video_context_dim, self.audio_context_dim = int(video_context_dim), int(audio_context_dim)

    def map(self, element: tuple[str, bytes]) -> StoryBatch:
        label, blob = element
        record = decode_record(blob, source=label)
        validate_record(record, self.cfg, self.video_context_dim, self.audio_context_dim, source=label)
        return pad_story(record, self.cfg, latent_dtype=self.latent_dtype)


def host_shard_options() -> grain.sharding.ShardOptions:
    """This JAX process's shard of the records (every host gets the same number; the remainder is dropped)."""
    return grain.sharding.ShardOptions(shard_index=jax.process_index(), shard_count=jax.process_count(), drop_remainder=True)


def make_story_loader(
    source,
    cfg: StoryConfig,
    *,
    video_context_dim: int,
    audio_context_dim: int,
    batch_size: int,
    seed: int,
    shard_options: grain.sharding.ShardOptions | None = None,
    shuffle: bool = True,
    num_epochs: int | None = None,
    worker_count: int = 0,
    worker_buffer_size: int = 1,
    read_options: grain.ReadOptions | None = None,
    latent_dtype=np.float32,
) -> grain.DataLoader:
    """A grain DataLoader yielding `StoryBatch`es of `batch_size` (per host) stories.

    source: a random-access source of encoded records (`open_story_source(…)`, `RandomStorySource`, a list of
    bytes). seed: a 32-bit non-negative int (shuffle order). shard_options: default `host_shard_options()`.
    num_epochs None repeats forever (a new shuffle each epoch; batches run across epoch ends); with a finite
    num_epochs a final partial batch is dropped (fixed shapes). latent_dtype: dtype of the latents, contexts and
    references in the batch (records may store float16 / bfloat16 / float32).
    read_options: default 2 reader threads and a read-ahead of 2 batches of records. (grain's own default, 16
    threads and 500 records ahead, is tuned for 1–10 KiB elements; a story record is megabytes.)
    Iterate with `it = iter(loader)`; `it.get_state()` / `it.set_state(state)` checkpoint the position.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be ≥ 1, got {batch_size}")
    shard_options = host_shard_options() if shard_options is None else shard_options
    if worker_count:
        _ensure_absl_flags_parsed()
    keyed = KeyedSource(source)
    per_shard = len(keyed) // shard_options.shard_count if shard_options.drop_remainder else len(keyed)
    if per_shard < 1:
        raise ValueError(f"{len(keyed)} records cannot give each of {shard_options.shard_count} shards one record")
    sampler = grain.samplers.IndexSampler(
        num_records=len(keyed), shard_options=shard_options, shuffle=shuffle, num_epochs=num_epochs, seed=seed
    )
    operations = [
        DecodeStory(cfg, video_context_dim, audio_context_dim, latent_dtype),
        grain.transforms.Batch(batch_size=batch_size, drop_remainder=True, batch_fn=stack_examples),
    ]
    return grain.DataLoader(
        data_source=keyed,
        sampler=sampler,
        operations=operations,
        shard_options=shard_options,
        worker_count=worker_count,
        worker_buffer_size=worker_buffer_size,
        read_options=read_options or grain.ReadOptions(num_threads=2, prefetch_buffer_size=2 * batch_size),
    )


def _ensure_absl_flags_parsed() -> None:
    """grain 0.2.18's worker processes read an absl flag (grain_enable_multiprocess_worker_profiling) and fail
    with UnparsedFlagAccessError outside an absl app; mark the flags parsed (keeping their defaults) if nobody did."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def _state_path(directory: str) -> str:
    return os.path.join(os.fspath(directory), f"process_{jax.process_index()}-of-{jax.process_count()}.json")


def save_iterator_state(directory: str, iterator: grain.DataLoaderIterator) -> str:
    """Write this host's iterator state (grain JSON) atomically; returns the file path."""
    os.makedirs(directory, exist_ok=True)
    path = _state_path(directory)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(iterator.get_state())
    os.replace(tmp, path)
    return path


def restore_iterator_state(directory: str, iterator: grain.DataLoaderIterator) -> grain.DataLoaderIterator:
    """Set `iterator` (from the same loader definition) to the state saved in `directory`; returns it."""
    path = _state_path(directory)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no saved iterator state for this process")
    with open(path, "rb") as f:
        iterator.set_state(f.read())
    return iterator
