"""`convert` writes the transformer layer by layer (checkpoint/streamed_params.py): one-layer chunks that restore
equal to the file's tensors, leaves produced strictly one after another, errors during the write surface and leave
nothing, and a sharded restore of the result equals the plain one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import orbax.checkpoint as ocp
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers import training_runs
from helpers.checkpoints import PREFIX, Spec, leftovers, read_all, rewrite

from unityshots_jax.checkpoint.ltx_convert import convert, load_params
from unityshots_jax.checkpoint.ltx_keys import leaf_key
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
from unityshots_jax.checkpoint.streamed_params import StreamedLeaf, save_streamed

HERE = os.path.dirname(os.path.abspath(__file__))


def _flat(tree) -> dict[tuple[str, ...], object]:
    return {tuple(str(k.key) for k in p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.mark.parametrize("spec", [Spec(), Spec(model_type="video_only", num_layers=3)], ids=["22b", "video-3-layers"])
def test_every_leaf_restores_layer_by_layer_from_one_layer_chunks(converted, spec):
    src, dst = converted(spec)
    file = SafetensorsFile(src)
    cfg, tree = load_params(dst)
    with ocp.StandardCheckpointer() as ckpt:
        stored = _flat(ckpt.metadata(os.path.join(dst, "params")).item_metadata.tree)
    stacked = 0
    for path, value in _flat(tree).items():
        leaf = leaf_key(path)
        value = np.asarray(value)
        chunk = tuple(stored[path].storage.chunk_shape)
        if leaf.stacked:
            stacked += 1
            assert chunk[0] == 1 and value.shape[0] == cfg.num_layers, (path, chunk)
        for layer in range(cfg.num_layers) if leaf.stacked else [None]:
            key = PREFIX + (leaf.key.format(i=layer) if leaf.stacked else leaf.key)
            want = np.asarray(file.read(key))
            got = value[layer] if leaf.stacked else value
            assert got.dtype == want.dtype, key
            np.testing.assert_array_equal(got, want.T if leaf.transpose else want, err_msg=key)
    assert stacked > 10


def test_leaves_are_produced_one_after_another(tmp_path):
    """Bounded memory: a leaf's parts are only made after the previous leaf's last part was written."""
    events: list[tuple[str, object]] = []
    values = {n: np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
              for n, shape in {"a": (4, 3, 2), "b": (5, 2), "c": (3, 6)}.items()}

    def leaf(name: str, stacked: bool) -> StreamedLeaf:
        def parts():
            for i in range(values[name].shape[0]) if stacked else [()]:
                events.append((name, i))
                yield i, values[name][i]
            events.append((name, "end"))

        return StreamedLeaf(values[name].shape, values[name].dtype, parts, stacked)

    save_streamed(str(tmp_path / "params"), {"a": leaf("a", True), "n": {"b": leaf("b", False), "c": leaf("c", True)}})
    # each leaf's parts form one contiguous run of events: no leaf starts before the previous one ended
    names = [n for n, _ in events]
    runs = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    assert sorted(runs) == ["a", "b", "c"], events
    assert [w for _, w in events].count("end") == 3
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(str(tmp_path / "params"))
    np.testing.assert_array_equal(restored["a"], values["a"])
    np.testing.assert_array_equal(restored["n"]["b"], values["b"])
    np.testing.assert_array_equal(restored["n"]["c"], values["c"])


def test_an_error_while_writing_surfaces_and_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    src = checkpoint(Spec())
    bad_key = PREFIX + "transformer_blocks.1.attn1.to_k.weight"
    real_read = SafetensorsFile.read

    def read(self, key):
        if key == bad_key:
            raise CheckpointError(f"{self.path}: tensor {key} could not be read (test)")
        return real_read(self, key)

    monkeypatch.setattr(SafetensorsFile, "read", read)
    dst = tmp_path / "converted"
    with pytest.raises(CheckpointError, match=f"tensor {bad_key} could not be read"):
        convert(src, str(dst), progress=False)
    assert not dst.exists() and not leftovers(str(tmp_path), "converted")


def test_a_layer_of_another_dtype_is_named(checkpoint, tmp_path):
    src = checkpoint(Spec())
    key = PREFIX + "transformer_blocks.1.attn1.to_q.weight"
    tensors, _, _ = read_all(src)
    bad = rewrite(src, str(tmp_path / "bad.safetensors"), replace={key: tensors[key].astype(ml_dtypes.bfloat16)})
    dst = tmp_path / "converted"
    with pytest.raises(CheckpointError, match=f"tensor {key} has dtype bfloat16, layer 0 has float32"):
        convert(bad, str(dst), progress=False)
    assert not dst.exists() and not leftovers(str(tmp_path), "converted")


def test_sharded_restore_equals_plain_restore(converted):
    _, dst = converted(Spec())
    env = training_runs.env(devices=2)
    out = subprocess.run([sys.executable, os.path.join(HERE, "helpers", "sharded_restore.py"), dst], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["leaves"] > 10 and result["split"] > result["leaves"] // 2, result
    assert result["equal"] == result["leaves"] and result["placed"] == result["leaves"], result


def test_a_leaf_orbax_did_not_hand_over_fails_loudly(tmp_path, monkeypatch):
    """If a newer orbax stops calling `_open_and_write`, saving fails instead of leaving leaves unwritten (zeros)."""

    async def builds_nothing(self, values, infos, args=None):
        return None

    monkeypatch.setattr(ocp.type_handlers.NumpyHandler, "_background_serialize", builds_nothing)
    value = np.ones((2, 3), np.float32)
    leaf = StreamedLeaf(value.shape, value.dtype, lambda: iter([((), value)]), False)
    with pytest.raises(RuntimeError, match="did not hand over every leaf's spec"):
        save_streamed(str(tmp_path / "params"), {"w": leaf})
