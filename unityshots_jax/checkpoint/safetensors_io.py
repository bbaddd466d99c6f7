"""Torch-free, streaming safetensors reading and writing, strict about malformed files.

Reading parses the header (8-byte little-endian length, then JSON) and memory-maps tensors one at a time, so a
file larger than RAM converts. bf16 tensors come back as `ml_dtypes.bfloat16` arrays, bit for bit. Nothing is
ever unpickled: a pickle or PyTorch zip file is recognised by its first bytes and refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Callable, Mapping

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
_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not match what is expected; the message names the cause."""


def _refuse_foreign(path: str, head: bytes) -> None:
    if head[:1] == b"\x80" and len(head) > 1 and head[1] in range(2, 6):
        raise CheckpointError(f"{path}: is a Python pickle, not safetensors; pickles are never loaded (convert it to safetensors)")
    if head[:2] == b"PK":
        raise CheckpointError(f"{path}: is a zip archive (a PyTorch .pt/.ckpt?), not safetensors; it is never unpickled")


class SafetensorsFile:
    """An opened safetensors file: `.metadata` (dict of str), `.keys()`, `.info(key)`, `.read(key)`."""

    def __init__(self, path: str):
        self.path = path
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: no such file")
        self.size = os.path.getsize(path)
        if self.size == 0:
            raise CheckpointError(f"{path}: file is empty")
        with open(path, "rb") as f:
            head = f.read(8)
            _refuse_foreign(path, head)
            if len(head) < 8:
                raise CheckpointError(f"{path}: too short for a safetensors header ({self.size} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER:
                raise CheckpointError(f"{path}: not a safetensors file (header length {n})")
            if 8 + n > self.size:
                raise CheckpointError(f"{path}: truncated: header needs {8 + n} bytes, file has {self.size}")
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise CheckpointError(f"{path}: not a safetensors file (header is not JSON: {e})") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: not a safetensors file (header is not an object)")
        self.data_start = 8 + n
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise CheckpointError(f"{path}: __metadata__ must map strings to strings")
        self.metadata: dict[str, str] = meta
        self._entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
        self.metadata_order = list(meta)
        data_len = self.size - self.data_start
        for key, entry in header.items():
            try:
                dtype = DTYPES[entry["dtype"]]
                shape = tuple(int(d) for d in entry["shape"])
                begin, end = (int(o) for o in entry["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise CheckpointError(f"{path}: tensor {key!r}: malformed header entry {entry!r}") from None
            if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or begin < 0:
                raise CheckpointError(f"{path}: tensor {key!r}: byte range does not match shape {shape} {entry['dtype']}")
            if end > data_len:
                raise CheckpointError(f"{path}: truncated: tensor {key!r} ends at byte {self.data_start + end}, file has {self.size}")
            self._entries[key] = (dtype, shape, begin, end)

    def keys(self) -> list[str]:
        return list(self._entries)

    def info(self, key: str) -> tuple[np.dtype, tuple[int, ...]]:
        dtype, shape, _, _ = self._entries[key]
        return dtype, shape

    def read(self, key: str) -> np.ndarray:
        """The tensor as a read-only memory-mapped array (no copy until used)."""
        dtype, shape, begin, _ = self._entries[key]
        if 0 in shape:
            return np.zeros(shape, dtype)
        if not shape:  # a 0-d tensor (e.g. a scalar parameter): one item, np.memmap cannot map shape ()
            with open(self.path, "rb") as f:
                f.seek(self.data_start + begin)
                return np.frombuffer(f.read(dtype.itemsize), dtype).reshape(())
        return np.memmap(self.path, dtype=dtype, mode="r", offset=self.data_start + begin, shape=shape)


def dtype_name(dtype: np.dtype) -> str:
    try:
        return _NAMES[np.dtype(dtype)]
    except KeyError:
        raise CheckpointError(f"dtype {dtype} cannot be stored in safetensors") from None


@dataclasses.dataclass(frozen=True)
class LazyTensor:
    """A tensor written by `write_safetensors` only when its bytes are due: `make()` returns it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    make: Callable[[], np.ndarray]


def write_safetensors(
    path: str,
    tensors: Mapping[str, "np.ndarray | LazyTensor"],
    metadata: Mapping[str, str],
    order: list[str] | None = None,
) -> None:
    """Write tensors and string metadata to `path` atomically (temporary file, then rename).

    order: the tensor names in header and data order (e.g. the order of the file they came from, so that
    convert → export reproduces it byte for byte); by default sorted by name.

    A `LazyTensor` is materialised only while its bytes are written, so a file larger than RAM can be written
    from memory maps or on-the-fly transposes.
    """
    names = sorted(tensors) if order is None else list(order)
    if set(names) != set(tensors) or len(names) != len(tensors):
        raise CheckpointError(f"{path}: tensor order does not list exactly the tensors to write")
    header: dict[str, object] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in names:
        t = tensors[name]
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
        header[name] = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(raw)))
            f.write(raw)
            for name in names:
                t = tensors[name]
                arr = t.make() if isinstance(t, LazyTensor) else t
                if tuple(arr.shape) != tuple(t.shape) or arr.dtype != t.dtype:
                    raise CheckpointError(f"{name}: produced {arr.shape} {arr.dtype}, announced {t.shape} {t.dtype}")
                f.write(np.ascontiguousarray(arr).tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
