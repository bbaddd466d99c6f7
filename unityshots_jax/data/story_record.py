"""One multi-shot training story as a record: a frozen dataclass of numpy arrays ↔ safetensors bytes.

A record holds k ground-truth shots of one story (pre-encoded VAE latents and text-encoder contexts), the
transition labels between them, and the story's references. Shapes (k shots, F_max / Fa_max the longest shot's
video / audio latent frames, S text tokens, R reference-image frames, Fr reference-audio frames):

    video_latents  [k, F_max, H, W, C]   float16 / bfloat16 / float32; shot i uses its first n_frames[i] frames
    n_frames       [k]                   int, in [stm_frames, F_max]
    audio_latents  [k, Fa_max, Ca]       float16 / bfloat16 / float32
    n_audio        [k]                   int, in [1, Fa_max]
    video_context  [k, S, Dv]            float (text-encoder output for the video stream)
    audio_context  [k, S, Da]            float
    context_mask   [k, S]                int / bool, 0 or 1 (at least one token per shot)
    cut_type       [k]                   int: 0 FIRST (shot 0 only), 1 CONTINUE, 2 HARD
    allowed_modes  [k, 3]                bool: may shot i be trained as T2V / I2V / R2V (≥ 1 per shot)
    ref_image      [R, H, W, C]          float, the identity latent (meaningful only if has_ref_image)
    has_ref_image  bool                  (R2V is allowed only when True)
    ref_audio      [Fr, Ca]              float, the reference voice latents
    ref_audio_mask [Fr]                  int / bool / float, 0 or 1
    boundary       [k] or None           float b̄ in [0, 1], given directly, or else …
    s_vis, s_aud, s_beat  [k] or None    … the Eq. 2 signals in [0, 1] (a missing one counts as 1)
    story_id       str                   (stored in the safetensors header metadata)

Serialised as safetensors bytes (`safetensors_bytes`): one tensor per field, `has_ref_image` a 0-d BOOL tensor,
absent optional fields omitted; metadata {"format": "unityshots.story", "version": "1", "story_id": …}.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unityshots_jax.data.safetensors_bytes import SafetensorsBytesError, decode_tensors, encode_tensors

FORMAT, VERSION = "unityshots.story", "1"
FIRST, CONTINUE, HARD = 0, 1, 2
REQUIRED_FIELDS = (
    "video_latents", "n_frames", "audio_latents", "n_audio", "video_context", "audio_context", "context_mask",
    "cut_type", "allowed_modes", "ref_image", "has_ref_image", "ref_audio", "ref_audio_mask",
)  # fmt: skip
OPTIONAL_FIELDS = ("boundary", "s_vis", "s_aud", "s_beat")


class RecordError(ValueError):
    """A record that cannot be decoded or does not match the configuration.

    `record` names the record (story id and/or location), `field` the offending field ("bytes" for corrupt
    bytes); both appear in the message.
    """

    def __init__(self, record: str, field: str, message: str):
        self.record, self.field, self.detail = record, field, message
        super().__init__(f"{record}: {field}: {message}")

    def __reduce__(self):  # picklable with its fields, so it crosses grain's worker processes intact
        return type(self), (self.record, self.field, self.detail)


@dataclasses.dataclass(frozen=True, eq=False)
class StoryRecord:
    """One multi-shot story; see the module docstring for every field's shape and dtype."""

    story_id: str
    video_latents: np.ndarray
    n_frames: np.ndarray
    audio_latents: np.ndarray
    n_audio: np.ndarray
    video_context: np.ndarray
    audio_context: np.ndarray
    context_mask: np.ndarray
    cut_type: np.ndarray
    allowed_modes: np.ndarray
    ref_image: np.ndarray
    has_ref_image: bool
    ref_audio: np.ndarray
    ref_audio_mask: np.ndarray
    boundary: np.ndarray | None = None
    s_vis: np.ndarray | None = None
    s_aud: np.ndarray | None = None
    s_beat: np.ndarray | None = None

    @property
    def num_shots(self) -> int:
        return int(np.shape(self.video_latents)[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """Every present array field by name (`has_ref_image` as a 0-d bool array)."""
        out = {name: np.asarray(getattr(self, name)) for name in REQUIRED_FIELDS if name != "has_ref_image"}
        out["has_ref_image"] = np.asarray(bool(self.has_ref_image))
        out.update({name: np.asarray(getattr(self, name)) for name in OPTIONAL_FIELDS if getattr(self, name) is not None})
        return out


def record_label(story_id: str | None, source: str | None = None) -> str:
    """How errors name a record: "story 'abc' (record 3 of shard-00000…)"."""
    parts = [f"story {story_id!r}" if story_id else "story <unknown id>"]
    if source:
        parts.append(f"({source})")
    return " ".join(parts)


def encode_record(record: StoryRecord) -> bytes:
    """The record as safetensors bytes (bit-exact arrays, dtypes kept, bf16 included)."""
    if not isinstance(record.story_id, str) or not record.story_id:
        raise RecordError(record_label(None), "story_id", f"must be a non-empty string, got {record.story_id!r}")
    try:
        return encode_tensors(record.arrays(), {"format": FORMAT, "version": VERSION, "story_id": record.story_id})
    except SafetensorsBytesError as e:
        raise RecordError(record_label(record.story_id), "bytes", str(e)) from None


def decode_record(blob: bytes, *, source: str | None = None) -> StoryRecord:
    """Parse bytes from `encode_record` (structure only; shapes against a config: `validate_record`).

    source: where the bytes came from (e.g. "record 17 of data-00000-of-00004.array_record"), named in errors.
    Raises RecordError on corrupt bytes (truncated, bad JSON, bad offsets), a foreign format, or missing /
    unknown fields.
    """
    try:
        tensors, meta = decode_tensors(blob)
    except SafetensorsBytesError as e:
        raise RecordError(record_label(None, source), "bytes", str(e)) from None
    story_id = meta.get("story_id")
    label = record_label(story_id, source)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        got = f"{meta.get('format')!r} version {meta.get('version')!r}"
        raise RecordError(label, "format", f"expected {FORMAT} version {VERSION}, got {got}")
    if not story_id:
        raise RecordError(label, "story_id", "missing from the header metadata")
    unknown = sorted(set(tensors) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise RecordError(label, unknown[0], "unknown field")
    for name in REQUIRED_FIELDS:
        if name not in tensors:
            raise RecordError(label, name, "missing")
    flag = tensors.pop("has_ref_image")
    if flag.shape != () or flag.dtype != np.bool_:
        raise RecordError(label, "has_ref_image", f"expected a 0-d bool, got shape {list(flag.shape)} {flag.dtype}")
    return StoryRecord(story_id=story_id, has_ref_image=bool(flag), **tensors)
