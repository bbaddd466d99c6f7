"""Training data: story records (safetensors bytes in ArrayRecord shards) and the grain input pipeline.

Public API:
  records     StoryRecord, RecordError, encode_record, decode_record, validate_record
  writing     write_records, read_manifest, config_fingerprint
  generating  random_story, RandomStorySource
  reading     open_story_source, make_story_loader, StoryBatch, pad_story, stack_examples, derive_boundary
  state       save_iterator_state, restore_iterator_state, IteratorHandler / IteratorSave / IteratorRestore (orbax)
"""

from unityshots_jax.data.random_stories import random_story
from unityshots_jax.data.record_validation import validate_record
from unityshots_jax.data.record_writer import config_fingerprint, read_manifest, write_records
from unityshots_jax.data.story_batch import StoryBatch, derive_boundary, pad_story, stack_examples
from unityshots_jax.data.story_dataset import (
    IteratorHandler,
    IteratorRestore,
    IteratorSave,
    make_story_loader,
    restore_iterator_state,
    save_iterator_state,
)
from unityshots_jax.data.story_record import RecordError, StoryRecord, decode_record, encode_record
from unityshots_jax.data.story_sources import RandomStorySource, open_story_source

__all__ = [
    "IteratorHandler", "IteratorRestore", "IteratorSave", "RandomStorySource", "RecordError", "StoryBatch",
    "StoryRecord", "config_fingerprint", "decode_record", "derive_boundary", "encode_record", "make_story_loader",
    "open_story_source", "pad_story", "random_story", "read_manifest", "restore_iterator_state",
    "save_iterator_state", "stack_examples", "validate_record", "write_records",
]  # fmt: skip
