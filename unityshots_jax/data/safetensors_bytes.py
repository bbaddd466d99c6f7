"""Safetensors as in-memory bytes: `{name: array}` + string metadata ↔ one `bytes` object, never pickle.

The layout and its checks are `unityshots_jax.safetensors_format`'s (the same as the file reader's), so a record
dumped to disk opens with any safetensors reader. Decoding is strict: every malformed header, offset, gap,
overlap or truncation raises `SafetensorsBytesError` naming the cause.
Decoded arrays are read-only views into the given bytes (no copy).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from unityshots_jax.safetensors_format import Entries, SafetensorsFormatError, dtype_name, encode_header, header_length, parse_header

__all__ = ["SafetensorsBytesError", "decode_header", "decode_tensors", "dtype_name", "encode_tensors"]

_MAX_HEADER = 16 * 1024 * 1024
_KIND = "safetensors bytes"

# Bytes that are not a well-formed safetensors blob; the message names the cause (and tensor, if any).
SafetensorsBytesError = SafetensorsFormatError


def encode_tensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialise arrays (in sorted name order) and string metadata to safetensors bytes."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsBytesError("metadata must map strings to strings")
    arrays = []
    for name in sorted(tensors):
        if name == "__metadata__":
            raise SafetensorsBytesError("'__metadata__' is reserved and cannot name a tensor")
        arr = np.asarray(tensors[name])
        arr = arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)
        arrays.append(arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr)
    header = encode_header([(name, a.dtype, a.shape) for name, a in zip(sorted(tensors), arrays)], metadata)
    return b"".join([header, *(a.tobytes() for a in arrays)])


def decode_header(blob: bytes) -> tuple[dict[str, str], Entries, int]:
    """Parse and check the header: (metadata, {name: (dtype, shape, begin, end)}, data start offset)."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise SafetensorsBytesError(f"expected bytes, got {type(blob).__name__}")
    n = header_length(blob[:8], len(blob), _MAX_HEADER, _KIND)
    meta, entries = parse_header(blob[8 : 8 + n], len(blob) - 8 - n, _KIND)
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
