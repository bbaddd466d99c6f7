"""Torch-free, streaming safetensors reading and writing, strict about malformed files.

Reading parses the header with `unityshots_jax.safetensors_format` (strict: offsets, gaps, overlaps, truncation)
and memory-maps tensors one at a time, so a file larger than RAM converts. bf16 tensors come back as `ml_dtypes.bfloat16` arrays, bit for bit. Nothing is
ever unpickled: a pickle or PyTorch zip file is recognised by its first bytes and refused.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping

import numpy as np

from unityshots_jax.safetensors_format import DTYPES, SafetensorsFormatError, encode_header, header_length, parse_header
from unityshots_jax.safetensors_format import dtype_name as format_dtype_name

__all__ = ["DTYPES", "CheckpointError", "LazyTensor", "SafetensorsFile", "dtype_name", "write_safetensors"]

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
            try:
                n = header_length(head, self.size, _MAX_HEADER, "a safetensors file")
                self.data_start = 8 + n
                meta, self._entries = parse_header(f.read(n), self.size - self.data_start, "a safetensors file")
            except SafetensorsFormatError as e:
                raise CheckpointError(f"{path}: {e}") from None
        self.metadata: dict[str, str] = meta
        self.metadata_order = list(meta)

    def keys(self) -> list[str]:
        return list(self._entries)

    def info(self, key: str) -> tuple[np.dtype, tuple[int, ...]]:
        dtype, shape, _, _ = self._entries[key]
        return dtype, shape

    def lazy(self, key: str) -> "LazyTensor":
        """The tensor as a `LazyTensor` that `write_safetensors` copies verbatim in bounded chunks (no mapping)."""
        dtype, shape, begin, _ = self._entries[key]
        return LazyTensor(shape, dtype, lambda: self.read(key), (self.path, self.data_start + begin))

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
    """The safetensors name of `dtype`; CheckpointError if it has none."""
    try:
        return format_dtype_name(dtype)
    except SafetensorsFormatError as e:
        raise CheckpointError(str(e)) from None


@dataclasses.dataclass(frozen=True)
class LazyTensor:
    """A tensor written by `write_safetensors` only when its bytes are due: `make()` returns it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    make: Callable[[], np.ndarray]
    file_range: tuple[str, int] | None = None  # (path, byte offset): copy verbatim in bounded chunks, no mapping


_CHUNK = 64 * 1024 * 1024


def _copy_range(out, path: str, offset: int, nbytes: int) -> None:
    with open(path, "rb") as f:
        f.seek(offset)
        while nbytes:
            chunk = f.read(min(_CHUNK, nbytes))
            if not chunk:
                raise CheckpointError(f"{path}: truncated while copying {nbytes} more bytes")
            out.write(chunk)
            nbytes -= len(chunk)


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
    try:
        header = encode_header([(name, np.dtype(tensors[name].dtype), tuple(tensors[name].shape)) for name in names], metadata)
    except SafetensorsFormatError as e:
        raise CheckpointError(f"{path}: {e}") from None
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            for name in names:
                t = tensors[name]
                if isinstance(t, LazyTensor) and t.file_range is not None:
                    nbytes = int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
                    _copy_range(f, t.file_range[0], t.file_range[1], nbytes)
                    continue
                arr = t.make() if isinstance(t, LazyTensor) else t
                if tuple(arr.shape) != tuple(t.shape) or arr.dtype != t.dtype:
                    raise CheckpointError(f"{name}: produced {arr.shape} {arr.dtype}, announced {t.shape} {t.dtype}")
                f.write(np.ascontiguousarray(arr).tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
