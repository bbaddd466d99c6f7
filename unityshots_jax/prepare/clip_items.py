"""One manifest item → one validated `StoryRecord`, or a `SkippedItem` saying why: the per-item unit of data
preparation (a Beam `DoFn` calls `prepare_item` per element, with the codecs built once per worker in `setup`).

    decode (PyAV) → shots (given, or detected) → checks → resize + centre crop to the bucket → boundary signals
    (s_vis, s_aud, s_beat) and cut types → texts and references            [item_loading.load_item, CPU]
    → video / audio / text codecs → StoryRecord                             [item_encoding.encode_item, device]
    → validate_record against the story config (the trainer's reader's check)

Pure per item: the result depends only on the item, its files, the codecs, the config and the options (no global
state, no randomness), so the same input gives the same record bytes. Nothing raises for bad data: an unreadable or
audio-less video, shots outside the video or overlapping, a shot shorter than the short-term memory needs, a missing
caption, a reference that does not decode, a bucket the codecs cannot produce, and a record that does not validate
each give a `SkippedItem` whose reason names the field or file. An unexpected error is caught too (reason
"unexpected …"), so one bad clip never stops a job; the part-2 pipeline writes skipped items to its dead-letter file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.data.record_validation import validate_record
from unityshots_jax.data.story_record import RecordError, StoryRecord
from unityshots_jax.prepare.item_encoding import DTYPES, encode_item
from unityshots_jax.prepare.item_loading import load_item
from unityshots_jax.prepare.item_types import LoadedItem, PrepareOptions, SkippedItem
from unityshots_jax.prepare.manifest import ManifestItem
from unityshots_jax.story.story_config import StoryConfig

__all__ = ["PrepareOptions", "SkippedItem", "encode_loaded", "prepare_item", "prepare_items"]


def encode_loaded(loaded: LoadedItem, codecs: CodecBundle, cfg: StoryConfig, options: PrepareOptions,
                  origin: str = "") -> StoryRecord | SkippedItem:
    """Stage 2 and the validation: the record of `loaded`, or a SkippedItem."""
    try:
        record = encode_item(loaded, codecs, cfg, options.latent_dtype)
        validate_record(record, cfg, codecs.text.video_dim, codecs.text.audio_dim, source=origin or None)
        return record
    except RecordError as exc:
        return SkippedItem(loaded.item_id, f"record: {exc}", origin)
    except Exception as exc:  # noqa: BLE001 — one bad clip must not stop the job; the reason says what happened
        return SkippedItem(loaded.item_id, f"unexpected {type(exc).__name__} while encoding: {exc}", origin)


def prepare_item(item: ManifestItem, codecs: CodecBundle, cfg: StoryConfig,
                 options: PrepareOptions | None = None) -> StoryRecord | SkippedItem:
    """The validated record of `item`, or a SkippedItem with the reason (see module doc); options default
    `PrepareOptions()`."""
    options = options or PrepareOptions()
    if options.latent_dtype not in DTYPES:
        raise ValueError(f"latent_dtype: {options.latent_dtype!r} is not one of {sorted(DTYPES)}")
    try:
        loaded = load_item(item, codecs, cfg, options)
    except Exception as exc:  # noqa: BLE001 — as above
        return SkippedItem(item.item_id, f"unexpected {type(exc).__name__} while loading: {exc}", item.origin)
    if isinstance(loaded, SkippedItem):
        return loaded
    return encode_loaded(loaded, codecs, cfg, options, item.origin)


def prepare_items(items: Iterable[ManifestItem], codecs: CodecBundle, cfg: StoryConfig,
                  options: PrepareOptions | None = None) -> Iterator[StoryRecord | SkippedItem]:
    """`prepare_item` over `items`, in order (a local loop; the distributed pipeline is part 2)."""
    options = options or PrepareOptions()
    for item in items:
        yield prepare_item(item, codecs, cfg, options)
