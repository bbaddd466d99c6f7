"""The `unityshots` CLI on bad input: exit 2, one stderr line naming the cause, nothing left behind."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.checkpoints import PREFIX, Spec, leftovers, read_all, rewrite, with_config  # noqa: E402
from unityshots_jax.checkpoint.safetensors_io import write_safetensors  # noqa: E402
from unityshots_jax.cli import main  # noqa: E402

BLOCK0 = PREFIX + "transformer_blocks.0."


class _Marker:
    """Unpickling this object would create a marker file (open(path, 'w'))."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_refused(capsys, argv, *words, dst: str | None = None, code: int = 2) -> str:
    rc, _, err = _run(capsys, argv)
    assert rc == code, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0], err
    line = lines[0]
    assert line.startswith(f"unityshots {argv[0]}: error: "), line
    for word in words:
        assert word in line, (word, line)
    if dst is not None:
        assert not os.path.exists(dst), f"{dst} left behind"
        parent, name = os.path.split(os.path.abspath(dst))
        assert not leftovers(parent, name), os.listdir(parent)
    return line


# --------------------------------------------------------------------------------------------- bad source files
def _empty(tmp, good):
    path = os.path.join(tmp, "empty.safetensors")
    open(path, "wb").close()
    return path, ["empty"]


def _truncated(tmp, good):
    path = os.path.join(tmp, "truncated.safetensors")
    with open(good, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return path, ["truncated"]


def _truncated_header(tmp, good):
    path = os.path.join(tmp, "cut-header.safetensors")
    with open(good, "rb") as f:
        data = f.read(100)
    with open(path, "wb") as f:
        f.write(data)
    return path, ["truncated"]


def _pickle(tmp, good):
    path = os.path.join(tmp, "model.safetensors")
    with open(path, "wb") as f:
        f.write(pickle.dumps({"state_dict": _Marker(os.path.join(tmp, "PWNED"))}))
    return path, ["pickle"]


def _pickle_protocol0(tmp, good):
    path = os.path.join(tmp, "old.safetensors")
    with open(path, "wb") as f:
        f.write(pickle.dumps({"state_dict": _Marker(os.path.join(tmp, "PWNED"))}, protocol=0))
    return path, ["not a safetensors file"]


def _torch_zip(tmp, good):
    import torch

    path = os.path.join(tmp, "model.pt")
    torch.save({"weight": torch.zeros(2), "marker": _Marker(os.path.join(tmp, "PWNED"))}, path)
    return path, ["zip", "never unpickled"]


def _no_config(tmp, good):
    return rewrite(good, os.path.join(tmp, "noconfig.safetensors"), metadata={"model_version": "2.3.0"}), ["config"]


def _config_not_json(tmp, good):
    return rewrite(good, os.path.join(tmp, "badjson.safetensors"), metadata={"config": "{transformer: nope"}), [
        "config", "JSON"]


def _missing_tensor(tmp, good):
    key = BLOCK0 + "attn1.to_q.weight"
    return rewrite(good, os.path.join(tmp, "missing.safetensors"), drop=(key,)), ["missing", key]


def _unexpected_tensor(tmp, good):
    key = PREFIX + "transformer_blocks.0.attn1.to_z.weight"
    return rewrite(good, os.path.join(tmp, "unexpected.safetensors"), add={key: np.zeros((4, 4), np.float32)}), [
        "unexpected", key]


def _extra_layer(tmp, good):
    key = PREFIX + "transformer_blocks.2.ff.net.2.bias"  # a third block in a 2-layer config
    return rewrite(good, os.path.join(tmp, "extra-layer.safetensors"), add={key: np.zeros(32, np.float32)}), [
        "unexpected", key]


def _wrong_shape(tmp, good):
    key = BLOCK0 + "ff.net.2.weight"
    return rewrite(good, os.path.join(tmp, "shape.safetensors"), replace={key: np.zeros((32, 63), np.float32)}), [
        key, "shape", "[32, 63]"]


def _integer_tensor(tmp, good):
    key = PREFIX + "patchify_proj.bias"
    return rewrite(good, os.path.join(tmp, "int.safetensors"), replace={key: np.zeros(32, np.int32)}), [key, "dtype"]


def _vae(tmp, good):
    path = os.path.join(tmp, "vae.safetensors")
    tensors = {"vae.decoder.conv_in.conv.weight": np.zeros((8, 4, 3, 3, 3), np.float32),
               "vae.encoder.conv_out.conv.bias": np.zeros(8, np.float32)}
    write_safetensors(path, tensors, {"config": json.dumps({"vae": {"latent_channels": 128}})})
    return path, ["transformer", "vae"]


def _config_refused_by_ltx_core(tmp, good):
    def bad(c):
        c["transformer"]["qk_norm"] = "layer_norm"
        return c

    return with_config(good, os.path.join(tmp, "qknorm.safetensors"), bad), ["qk_norm", "rms_norm"]


def _transformer_config_wrong_sizes(tmp, good):
    def bad(c):
        c["transformer"]["attention_head_dim"] = 8  # 2 heads × 8 = 16 != cross_attention_dim 32
        return c

    return with_config(good, os.path.join(tmp, "sizes.safetensors"), bad), ["cross_attention_dim", "32"]


def _config_more_layers(tmp, good):
    def more(c):
        c["transformer"]["num_layers"] = 3  # the file has 2 blocks
        return c

    return with_config(good, os.path.join(tmp, "layers.safetensors"), more), [
        "missing tensor", PREFIX + "transformer_blocks.2."]


BAD_SOURCES = {
    "empty": _empty,
    "truncated": _truncated,
    "truncated-header": _truncated_header,
    "pickle": _pickle,
    "pickle-protocol-0": _pickle_protocol0,
    "torch-zip": _torch_zip,
    "no-config": _no_config,
    "config-not-json": _config_not_json,
    "missing-tensor": _missing_tensor,
    "unexpected-tensor": _unexpected_tensor,
    "extra-layer": _extra_layer,
    "wrong-shape": _wrong_shape,
    "integer-tensor": _integer_tensor,
    "vae-checkpoint": _vae,
    "config-refused-by-ltx-core": _config_refused_by_ltx_core,
    "config-sizes-inconsistent": _transformer_config_wrong_sizes,
    "config-more-layers-than-tensors": _config_more_layers,
}


@pytest.mark.parametrize("bad", list(BAD_SOURCES))
def test_convert_refuses(bad, checkpoint, tmp_path, capsys):
    src, words = BAD_SOURCES[bad](str(tmp_path), checkpoint(Spec()))
    dst = str(tmp_path / "out")
    _assert_refused(capsys, ["convert", src, dst], *words, dst=dst)
    assert not (tmp_path / "PWNED").exists(), "a pickle was unpickled"


@pytest.mark.parametrize("bad", ["empty", "truncated", "pickle", "torch-zip", "no-config", "config-not-json", "vae-checkpoint"])
def test_verify_refuses_bad_source(bad, converted, tmp_path, capsys):
    _, dst = converted(Spec())
    src, words = BAD_SOURCES[bad](str(tmp_path), converted(Spec())[0])
    if bad == "vae-checkpoint":  # a valid header of another model: verify names the file (and its config)
        words = ["vae.safetensors", "config"]
    before = sorted(os.listdir(dst))
    _assert_refused(capsys, ["verify", src, dst], *words)
    assert not (tmp_path / "PWNED").exists(), "a pickle was unpickled"
    assert sorted(os.listdir(dst)) == before


def test_convert_refuses_non_empty_destination(checkpoint, tmp_path, capsys):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    _assert_refused(capsys, ["convert", checkpoint(Spec()), str(dst)], "not empty")
    assert os.listdir(dst) == ["keep.txt"] and (dst / "keep.txt").read_text() == "mine"
    assert not leftovers(str(tmp_path), "out")


def test_convert_refuses_existing_file_destination(checkpoint, tmp_path, capsys):
    dst = tmp_path / "out"
    dst.write_text("mine")
    _assert_refused(capsys, ["convert", checkpoint(Spec()), str(dst)], "not empty")
    assert dst.read_text() == "mine"


def test_convert_refuses_missing_parent(checkpoint, tmp_path, capsys):
    dst = str(tmp_path / "no" / "such" / "out")
    _assert_refused(capsys, ["convert", checkpoint(Spec()), dst], "does not exist", dst=dst)


def test_convert_refuses_missing_source(tmp_path, capsys):
    dst = str(tmp_path / "out")
    _assert_refused(capsys, ["convert", str(tmp_path / "nope.safetensors"), dst], "no such file", dst=dst)


def test_convert_failure_mid_write_leaves_nothing(checkpoint, tmp_path, capsys):
    """A problem found while writing (layer 1 stored in another dtype than layer 0) cleans up the build dir."""
    key = PREFIX + "transformer_blocks.1.attn1.to_q.weight"
    tensors, _, _ = read_all(checkpoint(Spec()))
    src = rewrite(checkpoint(Spec()), str(tmp_path / "mixed.safetensors"),
                  replace={key: tensors[key].astype(np.float16)})
    dst = str(tmp_path / "out")
    _assert_refused(capsys, ["convert", src, dst, "--quiet"], key, "float16", dst=dst)


# ----------------------------------------------------------------------------------------------------- export
def test_export_refuses_existing_file(converted, tmp_path, capsys):
    _, dst = converted(Spec())
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"mine")
    _assert_refused(capsys, ["export", dst, str(out)], "exists")
    assert out.read_bytes() == b"mine"
    assert not leftovers(str(tmp_path), "out.safetensors")


@pytest.mark.parametrize("what", ["empty-dir", "safetensors-file", "missing", "no-params", "wrong-format",
                                  "corrupt-config"])
def test_export_refuses_non_converted_source(what, converted, checkpoint, tmp_path, capsys):
    src = tmp_path / "src"
    words = {"empty-dir": ["not a converted checkpoint"], "safetensors-file": ["not a directory"],
             "missing": ["not a directory"], "no-params": ["not a converted checkpoint"],
             "wrong-format": ["format"], "corrupt-config": ["config.json", "unreadable"]}[what]
    if what == "empty-dir":
        src.mkdir()
    elif what == "safetensors-file":
        src = checkpoint(Spec())
    elif what in ("no-params", "wrong-format", "corrupt-config"):
        shutil.copytree(converted(Spec())[1], src)
        if what == "no-params":
            shutil.rmtree(src / "params")
        elif what == "wrong-format":
            meta = json.loads((src / "config.json").read_text())
            meta["format"] = "something-else"
            (src / "config.json").write_text(json.dumps(meta))
        else:
            (src / "config.json").write_text('{"format": ')
    out = str(tmp_path / "out.safetensors")
    _assert_refused(capsys, ["export", str(src), out], *words, dst=out)


def test_export_refuses_tampered_params(converted, tmp_path, capsys):
    """A converted directory whose config no longer matches its params/ (4 layers announced, 2 stored)."""
    src = tmp_path / "src"
    shutil.copytree(converted(Spec())[1], src)
    meta = json.loads((src / "config.json").read_text())
    meta["ltx_config"]["num_layers"] = 4
    (src / "config.json").write_text(json.dumps(meta))
    out = str(tmp_path / "out.safetensors")
    _assert_refused(capsys, ["export", str(src), out], "shape", dst=out)


def test_export_refuses_missing_output_directory(converted, tmp_path, capsys):
    out = str(tmp_path / "nope" / "out.safetensors")
    _assert_refused(capsys, ["export", converted(Spec())[1], out], "does not exist", dst=out)


# ----------------------------------------------------------------------------------------------------- verify
def test_verify_refuses_different_config(checkpoint, converted, capsys):
    _, dst = converted(Spec())
    other = checkpoint(Spec(rope="interleaved"))
    _assert_refused(capsys, ["verify", other, dst], "differs")


def test_verify_refuses_non_converted_destination(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _assert_refused(capsys, ["verify", checkpoint(Spec()), str(tmp_path / "empty")], "not a converted checkpoint")


@pytest.mark.unit
@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_behind_the_error(how, tmp_path, capsys, monkeypatch):
    argv = ["convert", str(tmp_path / "nope.safetensors"), str(tmp_path / "out")]
    _assert_refused(capsys, argv, "no such file")  # one line without --debug
    if how == "flag":
        argv = ["--debug", *argv]
    else:
        monkeypatch.setenv("UNITYSHOTS_DEBUG", "1")
    rc, _, err = _run(capsys, argv)
    lines = err.strip("\n").split("\n")
    assert rc == 2 and lines[0] == "Traceback (most recent call last):" and len(lines) > 3, err
    assert lines[-1].startswith("unityshots convert: error: ") and "no such file" in lines[-1], err


def test_verify_exit_code_1_on_mismatch(checkpoint, converted, capsys):
    """Same config, other weights: the run completes, every row FAILs, exit code 1."""
    spec = Spec(model_type="video_only")
    _, dst = converted(spec)
    rc, out, _ = _run(capsys, ["verify", checkpoint(Spec(model_type="video_only", seed=1)), dst])
    assert rc == 1
    assert "FAIL" in out and " 0 passed" in out


def test_verify_exit_code_0_on_match(converted, capsys):
    spec = Spec(model_type="video_only")
    src, dst = converted(spec)
    rc, out, err = _run(capsys, ["verify", src, dst, "--attention", "dense"])
    assert rc == 0, out + err
    assert "FAIL" not in out and out.rstrip().endswith("0 failed") and err == ""


def test_make_tiny_refuses_existing_output(tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    out.write_bytes(b"mine")
    _assert_refused(capsys, ["make-tiny", str(out)], "exists")
    assert out.read_bytes() == b"mine"


# --------------------------------------------------------------------------------------- the console script
def _console(*args: str, cwd: str) -> subprocess.CompletedProcess:
    exe = shutil.which("unityshots") or os.path.join(os.path.dirname(sys.executable), "unityshots")
    assert os.path.exists(exe), "console script 'unityshots' not installed"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_console_script_bad_and_good_input(checkpoint, tmp_path):
    src = checkpoint(Spec())
    with open(src, "rb") as f:
        (tmp_path / "cut.safetensors").write_bytes(f.read()[:5000])
    r = _console("convert", "cut.safetensors", "out", cwd=str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "truncated" in r.stderr and "cut.safetensors" in r.stderr
    assert not (tmp_path / "out").exists() and not leftovers(str(tmp_path), "out")

    r = _console("convert", src, "out", "--quiet", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "audio_video, 2 layers, rope split" in r.stdout
    r = _console("export", "out", "back.safetensors", "--quiet", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.safetensors").read_bytes() == open(src, "rb").read()
    r = _console("export", "out", "back.safetensors", cwd=str(tmp_path))
    assert r.returncode == 2 and "exists" in r.stderr


def test_console_script_make_tiny(tmp_path):
    r = _console("make-tiny", "t.safetensors", "--layout", "19b", "--rope", "split", "--model-type", "video_only",
                 "--layers", "1", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    from unityshots_jax.checkpoint.ltx_convert import convert

    cfg = convert(str(tmp_path / "t.safetensors"), str(tmp_path / "c"), progress=False)
    assert (cfg.model_type, cfg.num_layers, cfg.rope_type, cfg.caption_channels) == ("video_only", 1, "split", 24)
