"""The safetensors format, once: dtype names, the header codec and its strict checks (numpy only, no I/O).

Layout: 8-byte little-endian header length n, n bytes of JSON (an object; `"__metadata__"` maps strings to
strings; every other key names a tensor `{"dtype", "shape", "data_offsets": [begin, end)}`), padded with spaces to a
multiple of 8, then the tensors' raw little-endian bytes. Parsing is strict: a malformed entry, a byte range that
does not match its shape, a gap or overlap between tensors, a truncation or trailing bytes each raise
`SafetensorsFormatError` naming the tensor. Used by the file reader (`checkpoint/safetensors_io.py`, which prefixes
the path) and the in-record byte codec (`data/safetensors_bytes.py`).
"""

from __future__ import annotations

import json
import struct
from typing import Mapping

import ml_dtypes
import numpy as np

DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}

# name -> (dtype, shape, begin, end): byte offsets relative to the start of the data section
Entries = dict[str, tuple[np.dtype, tuple[int, ...], int, int]]


class SafetensorsFormatError(ValueError):
    """Bytes that do not follow the safetensors format; the message names the cause (and tensor, if any)."""


def dtype_name(dtype: np.dtype) -> str:
    """The safetensors name ("BF16", "F32", …) of a numpy / ml_dtypes dtype."""
    try:
        return _NAMES[np.dtype(dtype)]
    except KeyError:
        raise SafetensorsFormatError(f"dtype {dtype} cannot be stored in safetensors") from None


def encode_header(tensors: list[tuple[str, np.dtype, tuple[int, ...]]], metadata: Mapping[str, str]) -> bytes:
    """Length prefix + padded JSON header for `(name, dtype, shape)` in data order (offsets packed, no gaps)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in tensors:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {"dtype": dtype_name(dtype), "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def header_length(head: bytes, size: int, max_header: int, kind: str) -> int:
    """The header length n from the first 8 bytes of `size` in all; `kind` ("a safetensors file") names the input."""
    if len(head) < 8:
        raise SafetensorsFormatError(f"truncated: {size} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", bytes(head[:8]))
    if n == 0 or n > max_header:
        raise SafetensorsFormatError(f"not {kind} (header length {n})")
    if 8 + n > size:
        raise SafetensorsFormatError(f"truncated: header needs {8 + n} bytes, has {size}")
    return n


def parse_header(raw: bytes, data_len: int, kind: str) -> tuple[dict[str, str], Entries]:
    """(metadata, entries) of the JSON header `raw`, checked against a data section of `data_len` bytes."""
    try:
        header = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsFormatError(f"not {kind} (header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise SafetensorsFormatError(f"not {kind} (header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise SafetensorsFormatError("__metadata__ must map strings to strings")
    entries: Entries = {name: _entry(name, entry) for name, entry in header.items()}
    cursor = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda kv: (kv[1][2], kv[1][3])):
        if begin != cursor:
            raise SafetensorsFormatError(f"tensor {name!r}: starts at data byte {begin}, expected {cursor} (gap or overlap)")
        if end > data_len:
            raise SafetensorsFormatError(f"truncated: tensor {name!r} ends at data byte {end}, only {data_len} present")
        cursor = end
    if cursor != data_len:
        raise SafetensorsFormatError(f"{data_len - cursor} trailing bytes after the last tensor")
    return meta, entries


def _entry(name: str, entry) -> tuple[np.dtype, tuple[int, ...], int, int]:
    try:
        dtype = DTYPES[entry["dtype"]]
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise SafetensorsFormatError(f"tensor {name!r}: malformed header entry {entry!r}") from None
    if any(d < 0 for d in shape) or begin < 0 or end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise SafetensorsFormatError(
            f"tensor {name!r}: byte range [{begin}, {end}) does not match shape {list(shape)} {entry['dtype']}")
    return dtype, shape, begin, end
