"""Safetensors as in-memory bytes: `{name: array}` + string metadata ↔ one `bytes` object, never pickle.

The layout is the safetensors format that `unityshots_jax.checkpoint.safetensors_io` writes to files (8-byte
little-endian header length, a JSON header padded with spaces to a multiple of 8, then the raw little-endian
tensor bytes in header order), so a record dumped to disk opens with any safetensors reader. Decoding is strict:
every malformed header, offset, gap, overlap or truncation raises `SafetensorsBytesError` naming the cause.
Decoded arrays are read-only views into the given bytes (no copy).
"""

from __future__ import annotations

import json
import struct
from typing import Mapping

import numpy as np

from unityshots_jax.checkpoint.safetensors_io import DTYPES

_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_MAX_HEADER = 16 * 1024 * 1024


class SafetensorsBytesError(ValueError):
    """Bytes that are not a well-formed safetensors blob; the message names the cause (and tensor, if any)."""


def dtype_name(dtype: np.dtype) -> str:
    """The safetensors name ("BF16", "F32", …) of a numpy / ml_dtypes dtype."""
    try:
        return _NAMES[np.dtype(dtype)]
    except KeyError:
        raise SafetensorsBytesError(f"dtype {dtype} cannot be stored in safetensors") from None


def encode_tensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialise arrays (in sorted name order) and string metadata to safetensors bytes."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsBytesError("metadata must map strings to strings")
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    arrays, offset = [], 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsBytesError("'__metadata__' is reserved and cannot name a tensor")
        arr = np.asarray(tensors[name])
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
        arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
        header[name] = {"dtype": dtype_name(arr.dtype), "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        arrays.append(arr)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return b"".join([struct.pack("<Q", len(raw)), raw, *(a.tobytes() for a in arrays)])


def decode_header(blob: bytes) -> tuple[dict[str, str], dict[str, tuple[np.dtype, tuple[int, ...], int, int]], int]:
    """Parse and check the header: (metadata, {name: (dtype, shape, begin, end)}, data start offset)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SafetensorsBytesError(f"expected bytes, got {type(blob).__name__}")
    size = len(blob)
    if size < 8:
        raise SafetensorsBytesError(f"truncated: {size} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", bytes(blob[:8]))
    if n == 0 or n > _MAX_HEADER:
        raise SafetensorsBytesError(f"not safetensors bytes (header length {n})")
    if 8 + n > size:
        raise SafetensorsBytesError(f"truncated: header needs {8 + n} bytes, got {size}")
    try:
        header = json.loads(bytes(blob[8 : 8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsBytesError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsBytesError("header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsBytesError("__metadata__ must map strings to strings")
    entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
    for name, entry in header.items():
        try:
            dtype = DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsBytesError(f"tensor {name!r}: malformed header entry {entry!r}") from None
        if any(d < 0 for d in shape) or begin < 0 or end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise SafetensorsBytesError(
                f"tensor {name!r}: byte range [{begin}, {end}) does not match shape {list(shape)} {entry['dtype']}"
            )
        entries[name] = (dtype, shape, begin, end)
    data_len, cursor = size - 8 - n, 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != cursor:
            raise SafetensorsBytesError(f"tensor {name!r}: starts at byte {begin}, expected {cursor} (gap or overlap)")
        if end > data_len:
            raise SafetensorsBytesError(f"truncated: tensor {name!r} ends at data byte {end}, only {data_len} present")
        cursor = end
    if cursor != data_len:
        raise SafetensorsBytesError(f"{data_len - cursor} trailing bytes after the last tensor")
    return meta, entries, 8 + n


def decode_tensors(blob: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse safetensors bytes: ({name: read-only array view}, metadata)."""
    meta, entries, start = decode_header(blob)
    buf = memoryview(blob)
    tensors = {}
    for name, (dtype, shape, begin, _) in entries.items():
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=start + begin) if count else np.zeros(0, dtype)
        tensors[name] = arr.reshape(shape)
    return tensors, meta
