"""convert → export reproduces the official file byte for byte; extras are kept aside and come back; every
component of a full-stack file is identified and checked strictly at convert time."""

from __future__ import annotations

import filecmp
import json
import os

import jax
import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.checkpoints import PREFIX, VAE_KEY, Spec, leftovers, read_all, rewrite, to_bf16  # noqa: E402
from unityshots_jax.checkpoint.ltx_convert import (  # noqa: E402
    CONNECTOR_PREFIXES,
    convert,
    export,
    load_params,
    read_converted_config,
)
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile  # noqa: E402

SPECS = {
    "22b": Spec(),
    "22b-interleaved": Spec(rope="interleaved"),
    "19b": Spec(layout="19b", rope="interleaved"),
    "19b-audio-only": Spec(layout="19b", rope="interleaved", model_type="audio_only"),
    "video-only-3-layers": Spec(model_type="video_only", num_layers=3),
}


def _same_bytes(a: str, b: str) -> None:
    assert os.path.getsize(a) == os.path.getsize(b)
    assert filecmp.cmp(a, b, shallow=False)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()


def _extra_keys(keys) -> set[str]:
    return {k for k in keys if not k.startswith(PREFIX) or k.startswith(CONNECTOR_PREFIXES)}


@pytest.mark.parametrize("name", list(SPECS))
def test_convert_export_is_bit_exact(name, checkpoint, tmp_path):
    spec = SPECS[name]
    src = checkpoint(spec)
    dst = str(tmp_path / "converted")
    cfg = convert(src, dst, progress=False)
    assert cfg.model_type == spec.model_type and cfg.num_layers == spec.num_layers
    assert sorted(os.listdir(dst)) == ["config.json", "extras.safetensors", "params"]

    # the non-transformer tensors are kept aside, verbatim
    original = SafetensorsFile(src)
    extras = SafetensorsFile(os.path.join(dst, "extras.safetensors"))
    expected_extras = _extra_keys(original.keys())
    assert set(extras.keys()) == expected_extras
    assert any(k.startswith(CONNECTOR_PREFIXES) for k in expected_extras)
    assert any(k.startswith("text_embedding_projection.") for k in expected_extras)
    for key in extras.keys():
        np.testing.assert_array_equal(np.asarray(extras.read(key)), np.asarray(original.read(key)))
        assert extras.info(key) == original.info(key)

    # the orbax tree holds exactly the transformer tensors (stacked layers, transposed kernels)
    meta, _ = read_converted_config(dst)
    assert meta["checkpoint_config"] == json.loads(original.metadata["config"])
    _, tree = load_params(dst)
    leaves = jax.tree_util.tree_leaves(tree)
    stored = sum(int(np.prod(leaf.shape)) for leaf in leaves)
    in_file = sum(int(np.prod(original.info(k)[1])) for k in original.keys() if k not in expected_extras)
    assert stored == in_file
    kernel = np.asarray(tree["blocks"]["attn1" if cfg.has_video else "audio_attn1"]["to_q"]["kernel"])
    prefix = PREFIX + "transformer_blocks.{}." + ("attn1" if cfg.has_video else "audio_attn1") + ".to_q.weight"
    for layer in range(cfg.num_layers):
        np.testing.assert_array_equal(kernel[layer], np.asarray(original.read(prefix.format(layer))).T)

    out = str(tmp_path / "exported.safetensors")
    export(dst, out, progress=False)
    _same_bytes(src, out)
    assert not [e for e in os.listdir(tmp_path) if ".tmp-" in e or ".partial-" in e]


def test_bf16_checkpoint_round_trips_and_stays_bf16(checkpoint, tmp_path):
    src = to_bf16(checkpoint(Spec()), str(tmp_path / "bf16.safetensors"))
    tensors, _, _ = read_all(src)
    assert {t.dtype for t in tensors.values()} == {np.dtype(ml_dtypes.bfloat16)}
    dst = str(tmp_path / "converted")
    convert(src, dst, progress=False)
    _, tree = load_params(dst)
    dtypes = {np.dtype(leaf.dtype) for leaf in jax.tree_util.tree_leaves(tree)}
    assert dtypes == {np.dtype(ml_dtypes.bfloat16)}
    extras = SafetensorsFile(os.path.join(dst, "extras.safetensors"))
    assert {extras.info(k)[0] for k in extras.keys()} == {np.dtype(ml_dtypes.bfloat16)}
    out = str(tmp_path / "exported.safetensors")
    export(dst, out, progress=False)
    _same_bytes(src, out)


def test_mixed_dtypes_round_trip(checkpoint, tmp_path):
    """Per-tensor dtypes survive: bf16 blocks, float32 everything else (and a float16 extra)."""

    base = checkpoint(Spec())
    tensors, _, _ = read_all(base)
    replace = {k: v.astype(ml_dtypes.bfloat16) for k, v in tensors.items() if ".transformer_blocks." in k}
    src = rewrite(base, str(tmp_path / "mixed.safetensors"), replace=replace,
                  add={"text_embedding_projection.extra_f16": np.ones((2, 3), np.float16)})
    dst = str(tmp_path / "converted")
    convert(src, dst, progress=False)
    _, tree = load_params(dst)
    assert np.dtype(tree["blocks"]["attn1"]["to_q"]["kernel"].dtype) == np.dtype(ml_dtypes.bfloat16)
    assert np.dtype(tree["patchify_proj"]["kernel"].dtype) == np.float32
    out = str(tmp_path / "exported.safetensors")
    export(dst, out, progress=False)
    _same_bytes(src, out)


def test_convert_into_existing_empty_directory(checkpoint, tmp_path):
    dst = tmp_path / "empty"
    dst.mkdir()
    convert(checkpoint(Spec()), str(dst), progress=False)
    assert (dst / "config.json").is_file() and (dst / "params").is_dir()
    assert not [e for e in os.listdir(tmp_path) if ".partial-" in e]


def test_converted_params_load_into_model(converted):
    """The restored tree matches the model's parameter structure exactly (what parity.load_flax relies on)."""
    from flax import nnx

    from unityshots_jax.ltx.transformer import abstract_model

    _, dst = converted(Spec())
    cfg, tree = load_params(dst)
    _, state = nnx.split(abstract_model(cfg))
    expected = {tuple(str(p) for p in path): leaf.get_value().shape for path, leaf in nnx.to_flat_state(state)}
    got = {tuple(str(k.key) for k in path): leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
    assert got == expected


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory):
    from helpers.full_stack import write_full_stack

    return write_full_stack(str(tmp_path_factory.mktemp("full") / "full.safetensors"))


def test_full_stack_file_round_trips_with_every_component(full_stack, tmp_path):
    dst = str(tmp_path / "converted")
    convert(full_stack, dst, progress=False)
    meta, _ = read_converted_config(dst)
    components = meta["components"]
    assert sorted(components) == ["audio_vae", "text", "video_vae", "vocoder"]
    original = SafetensorsFile(full_stack)
    owned = [k for keys in components.values() for k in keys]
    assert len(owned) == len(set(owned))
    assert set(owned) == _extra_keys(original.keys())
    assert any(k.startswith("vae.per_channel_statistics.") for k in components["video_vae"])
    assert "vocoder.mel_stft.stft_fn.inverse_basis" in components["vocoder"]
    out = str(tmp_path / "exported.safetensors")
    export(dst, out, progress=False)
    _same_bytes(full_stack, out)


@pytest.mark.parametrize("surgery", ["drop", "reshape", "unexpected", "no_section"])
def test_convert_refuses_a_broken_component_naming_the_tensor(full_stack, tmp_path, surgery):
    key = "vae.decoder.conv_in.conv.weight"
    tensors, meta, _ = read_all(full_stack)
    bad = str(tmp_path / "bad.safetensors")
    if surgery == "drop":
        rewrite(full_stack, bad, drop=(key,))
        match = f"video vae: tensor {key} is missing"
    elif surgery == "reshape":
        rewrite(full_stack, bad, replace={key: tensors[key][:, :-1]})
        match = f"video vae: tensor {key} has shape"
    elif surgery == "unexpected":
        key = "audio_vae.decoder.extra.weight"
        rewrite(full_stack, bad, add={key: np.ones(3, np.float32)})
        match = f"audio vae: unexpected tensor {key}"
    else:
        config = json.loads(meta["config"])
        del config["vocoder"]
        rewrite(full_stack, bad, metadata={**meta, "config": json.dumps(config)})
        match = r"tensor vocoder\.\S+ belongs to the vocoder, but the checkpoint config has no 'vocoder' section"
    dst = tmp_path / "converted"
    with pytest.raises(CheckpointError, match=match):
        convert(bad, str(dst), progress=False)
    assert not dst.exists() and not leftovers(str(tmp_path), "converted")


def test_a_tensor_of_no_component_is_named(checkpoint, tmp_path):
    bad = rewrite(checkpoint(Spec()), str(tmp_path / "bad.safetensors"), add={"mystery.weight": np.ones(2, np.float32)})
    with pytest.raises(CheckpointError, match="tensor mystery.weight belongs to no component"):
        convert(bad, str(tmp_path / "converted"), progress=False)
    lone_vae = rewrite(checkpoint(Spec()), str(tmp_path / "vae.safetensors"), add={VAE_KEY: np.ones(2, np.float32)})
    with pytest.raises(CheckpointError, match=f"tensor {VAE_KEY} belongs to the video vae, but .* no 'vae' section"):
        convert(lone_vae, str(tmp_path / "converted"), progress=False)
