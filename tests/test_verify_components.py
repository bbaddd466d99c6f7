"""`unityshots verify` covers every component of a full-stack file: one row per component against ltx-core, and a
converted directory with one corrupted VAE tensor fails exactly that component's row."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.checkpoints import read_all, rewrite  # noqa: E402
from helpers.full_stack import GEMMA_DIM, GEMMA_STATES, write_full_stack  # noqa: E402
from unityshots_jax.checkpoint.ltx_convert import convert  # noqa: E402
from unityshots_jax.parity import verify_components  # noqa: E402
from unityshots_jax.reference.verify_video import verify_video  # noqa: E402


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    src = write_full_stack(str(root / "full.safetensors"))
    convert(src, str(root / "converted"), progress=False)
    return src, str(root / "converted")


def test_every_component_has_a_passing_row(full_stack):
    src, converted = full_stack
    rows = verify_components(src, converted, text_shape=(GEMMA_DIM, GEMMA_STATES))
    assert [r.stream for r in rows] == ["text video context", "text audio context", "video encoder", "video decoder",
                                        "mel front end", "audio encoder", "audio decoder", "vocoder"]
    assert all(r.ok for r in rows), [r.result for r in rows if not r.ok]


def _with_one_tensor_changed(converted: str, tmp_path, pick) -> str:
    """A copy of `converted` (params and config linked) whose extras differ in one element of the first tensor
    `pick(key)` accepts."""
    bad = tmp_path / "bad"
    bad.mkdir()
    os.symlink(os.path.join(converted, "params"), bad / "params")
    os.symlink(os.path.join(converted, "config.json"), bad / "config.json")
    extras = os.path.join(converted, "extras.safetensors")
    tensors, _, _ = read_all(extras)
    key = next(k for k in tensors if pick(k))
    corrupted = tensors[key].copy()
    corrupted.flat[0] += 0.05
    rewrite(extras, str(bad / "extras.safetensors"), replace={key: corrupted})
    return str(bad)


def test_a_corrupted_vae_tensor_fails_its_row(full_stack, tmp_path):
    src, converted = full_stack
    bad = _with_one_tensor_changed(converted, tmp_path, lambda k: k == "vae.decoder.conv_in.conv.weight")
    encoder, decoder = verify_video(src, bad)
    assert encoder.ok
    assert not decoder.ok and decoder.err > decoder.bound


def test_a_corrupted_connector_tensor_fails_its_stream(full_stack, tmp_path):
    from unityshots_jax.reference.verify_text import verify_text

    src, converted = full_stack
    bad = _with_one_tensor_changed(converted, tmp_path, lambda k: k.startswith(
        "model.diffusion_model.audio_embeddings_connector.") and k.endswith("to_q.weight"))
    video, audio = verify_text(src, bad, dim=GEMMA_DIM, num_states=GEMMA_STATES)
    assert video.ok
    assert not audio.ok and audio.err > audio.bound
