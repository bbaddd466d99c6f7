"""One safetensors format module: the file reader and the in-record byte codec apply the same strict checks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile, write_safetensors
from unityshots_jax.data.safetensors_bytes import SafetensorsBytesError, decode_tensors, encode_tensors

pytestmark = pytest.mark.unit

TENSORS = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int64)}


def _with_header(blob: bytes, edit) -> bytes:
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + blob[8 + n :]


def _gap(h):  # "b" moved 4 bytes later, the file grown to match: a hole in the data section
    h["b"]["data_offsets"] = [h["b"]["data_offsets"][0] + 4, h["b"]["data_offsets"][1] + 4]


def _overlap(h):
    h["b"]["data_offsets"] = [h["b"]["data_offsets"][0] - 8, h["b"]["data_offsets"][1] - 8]


@pytest.mark.parametrize("edit,pad,words", [(_gap, 4, "gap or overlap"), (_overlap, -8, "gap or overlap"),
                                             (lambda h: None, 3, "trailing bytes")], ids=["gap", "overlap", "trailing"])
def test_both_readers_refuse_the_same_malformed_layout(edit, pad, words, tmp_path):
    blob = _with_header(encode_tensors(TENSORS, {"k": "v"}), edit)
    blob = blob + b"\0" * pad if pad > 0 else blob[:pad]
    with pytest.raises(SafetensorsBytesError, match=words):
        decode_tensors(blob)
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError, match=f"bad.safetensors: .*{words}"):
        SafetensorsFile(str(path))


def test_file_and_bytes_round_trip_identically(tmp_path):
    blob = encode_tensors(TENSORS, {"k": "v"})
    path = str(tmp_path / "ok.safetensors")
    write_safetensors(path, TENSORS, {"k": "v"})
    with open(path, "rb") as f:
        assert f.read() == blob  # one header codec, byte for byte
    tensors, meta = decode_tensors(blob)
    f = SafetensorsFile(path)
    assert meta == f.metadata == {"k": "v"} and f.keys() == list(tensors) == ["a", "b"]
    for k in TENSORS:
        np.testing.assert_array_equal(f.read(k), tensors[k])
        np.testing.assert_array_equal(tensors[k], TENSORS[k])
