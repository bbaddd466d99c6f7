"""Data preparation: multi-shot videos with sound → story records the trainer reads (`unityshots_jax.data`).

Public API (part 1, per item; the Beam pipeline and the `prepare-data` command build on it):
  manifest        read_manifest, ManifestItem, ShotSpec, CharacterSpec, FromShot, ManifestError
  per item        prepare_item, prepare_items, PrepareOptions, SkippedItem  (clip_items)
  stages          load_item (item_loading), encode_item (item_encoding)
  pieces          decode_clip (media_decode), detect_cuts (shot_detection), boundary_signals (boundary_signals),
                  Bucket, parse_bucket, model_bucket (buckets)
"""

from unityshots_jax.prepare.buckets import Bucket, model_bucket, parse_bucket
from unityshots_jax.prepare.clip_items import PrepareOptions, SkippedItem, prepare_item, prepare_items
from unityshots_jax.prepare.manifest import (
    CharacterSpec,
    FromShot,
    ManifestError,
    ManifestItem,
    ShotSpec,
    read_manifest,
)

__all__ = [
    "Bucket", "CharacterSpec", "FromShot", "ManifestError", "ManifestItem", "PrepareOptions", "ShotSpec",
    "SkippedItem", "model_bucket", "parse_bucket", "prepare_item", "prepare_items", "read_manifest",
]  # fmt: skip
