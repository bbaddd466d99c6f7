"""Official LoRA files (`checkpoint/ltx_lora.py`) against ltx-core 1.0.0's own fusion.

A tiny random LTX-2.3 model is saved in the official layout (bf16, as the released checkpoints are) and converted;
tiny rank-4 LoRAs in the official key layout (`diffusion_model.<module>.lora_A/B.weight`) adapt every Linear of the
blocks (q/k/v/out and gate logits of the six attentions, both feed-forwards) and some outside them. ltx-core builds
the fused transformer the way `ModelLedger.transformer()` does; we merge into the converted tree and compare every
tensor of the checkpoint layout, then one forward pass (the repo's fp32 parity criterion).
"""

from __future__ import annotations

import copy
import os
import re

import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from helpers.checkpoints import PREFIX, Spec, to_bf16
from helpers.lora_files import NON_BLOCK, RANK, linear_weights, lora_targets, write_lora

from unityshots_jax.checkpoint.ltx_convert import _export_tensors, convert, load_params, params_as
from unityshots_jax.checkpoint.ltx_lora import LoraFile, merge_lora, merge_loras, read_lora
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile, write_safetensors


def ltx_core_transformer(src: str, loras: list[tuple[str, float]], dtype: str, *, registry: bool = False):
    """ltx-core's fused `LTXModel`, built as `ModelLedger(...).transformer()` builds it (CLI LoRA key ops).

    registry: pass a `StateDictRegistry` (default: the ledger's `DummyRegistry`). With the dummy registry ltx-core
    1.0.0 fuses into the loaded state dict in place and leaves every weight no LoRA adapts in the file's dtype, so a
    float32 build of a bf16 file comes out mixed (adapted weights float32, the rest bf16); with a registry every
    weight is cast to `dtype`.
    """
    from unityshots_jax.reference.torchaudio_compat import install

    install()  # model_ledger imports ltx_core.model.audio_vae
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps
    from ltx_core.loader.registry import StateDictRegistry
    from ltx_pipelines.utils.model_ledger import ModelLedger

    torch.set_num_threads(1)
    ledger = ModelLedger(dtype=getattr(torch, dtype), device=torch.device("cpu"), checkpoint_path=src,
                         loras=tuple(LoraPathStrengthAndSDOps(p, s, LTXV_LORA_COMFY_RENAMING_MAP) for p, s in loras),
                         registry=StateDictRegistry() if registry else None)
    return ledger.transformer().velocity_model


def official_arrays(cfg, tree) -> dict[str, np.ndarray]:
    """Our tree in the checkpoint layout (the converter's export mapping), float32, keyed like ltx-core's state dict."""
    return {k[len(PREFIX):]: np.asarray(v.make(), np.float32) for k, v in _export_tensors(cfg, tree).items()}


@pytest.fixture(scope="module")
def base(checkpoint, tmp_path_factory):
    """(bf16 official file, its config dict, LTXConfig, converted bf16 tree, LoRA targets {module: (out, in)}, root)."""
    import json

    root = tmp_path_factory.mktemp("lora")
    src = to_bf16(checkpoint(Spec()), str(root / "base-bf16.safetensors"))
    convert(src, str(root / "converted"), progress=False)
    cfg, tree = load_params(str(root / "converted"))
    config = json.loads(SafetensorsFile(src).metadata["config"])["transformer"]
    return src, config, cfg, tree, lora_targets(linear_weights(src)), root


@pytest.fixture(scope="module")
def loras(base):
    """Two LoRA files: the official prefix with one smaller per-layer rank, and bare keys (ltx-core takes both)."""
    _, _, _, _, targets, root = base
    first = write_lora(root / "first.safetensors", targets, 1, ranks={"transformer_blocks.0.ff.net.2": 2})
    second = write_lora(root / "second.safetensors", targets, 2, prefix="")
    return first, second


def test_read_lora_layout(base, loras):
    _, _, cfg, tree, _, _ = base
    lora = read_lora(loras[0], cfg)
    assert isinstance(lora, LoraFile) and lora.rank == RANK and lora.alpha is None
    a, b = lora.targets[("blocks", "attn1", "to_q", "kernel")]
    assert a.shape == (cfg.num_layers, RANK, tree["blocks"]["attn1"]["to_q"]["kernel"].shape[1])
    assert b.shape == (cfg.num_layers, tree["blocks"]["attn1"]["to_q"]["kernel"].shape[2], RANK)
    assert a.dtype == ml_dtypes.bfloat16
    gate_a, _ = lora.targets[("blocks", "attn1", "to_gate_logits", "kernel")]
    assert not gate_a[0].any() and gate_a[1].any()  # layer 0 not in the file: zero-filled
    ff_a, _ = lora.targets[("blocks", "ff", "proj_out", "kernel")]
    assert not ff_a[0, 2:].any() and ff_a[1, 2:].any()  # rank 2 in layer 0, padded to 4
    assert lora.targets[("patchify_proj", "kernel")][0].shape == (RANK, tree["patchify_proj"]["kernel"].shape[0])
    kernels = {p for p in lora.targets}
    assert len(kernels) == 34 + len(NON_BLOCK)  # 6 attentions × (q, k, v, out, gate) + 2 FFs × 2


def test_merge_matches_ltx_core_float32(base, loras):
    """fp32 build of the bf16 file (ModelLedger dtype=float32), strength 0.8: weights and one forward pass."""
    from flax import nnx

    from unityshots_jax.ltx.config import ExecutionConfig
    from unityshots_jax.ltx.inputs import Perturbations
    from unityshots_jax.ltx.transformer import abstract_model, forward
    from unityshots_jax.parity import stream_input
    from unityshots_jax.parity_criterion import assert_parity
    from unityshots_jax.reference.run_reference import run_reference
    from unityshots_jax.reference.verify_cases import make_verify_cases

    src, config, cfg, tree, targets, _ = base
    ref = ltx_core_transformer(src, [(loras[0], 0.8)], "float32", registry=True)
    base32 = params_as(tree, "float32")
    merged = merge_lora(base32, read_lora(loras[0], cfg), 0.8)
    ours, theirs, before = official_arrays(cfg, merged), ref.state_dict(), official_arrays(cfg, base32)
    assert set(ours) == set(theirs)
    mixed = ltx_core_transformer(src, [(loras[0], 0.8)], "float32").state_dict()  # the ledger's default registry
    assert {v.dtype for v in mixed.values()} == {torch.float32, torch.bfloat16}  # ltx-core 1.0.0: see the helper
    assert all(torch.equal(mixed[k].float(), theirs[k]) for k in theirs)  # same values, only dtypes differ
    worst = 0.0
    for key, value in ours.items():
        want = theirs[key].numpy()
        assert value.dtype == want.dtype == np.float32, key
        err = float(np.max(np.abs(value - want)) / max(np.max(np.abs(want)), 1e-30))
        assert err <= 1e-6, f"{key}: max|Δ| {err:.3g} of max|W|"
        worst = max(worst, err)
        if key[: -len(".weight")] not in targets:
            assert np.array_equal(value, before[key]), key  # untouched
    changed = [k for k in targets if not np.allclose(ours[k + ".weight"], before[k + ".weight"], atol=1e-2)]
    assert len(changed) == len(targets)  # every adapted weight really moved
    print(f"fp32 merged weights: max |ours − ltx-core| / max|W| = {worst:.3g}")

    case = make_verify_cases(config, 0)[0]  # "plain": batch 2, padded text
    ref32 = run_reference(ref, case, "float32")
    ref64 = run_reference(copy.deepcopy(ref).double(), case, "float64")
    graphdef, state = nnx.split(abstract_model(cfg))
    nnx.replace_by_pure_dict(state, merged)
    out = forward(graphdef, state, stream_input(case.video, "float32", is_video=True),
                  stream_input(case.audio, "float32", is_video=False),
                  Perturbations.from_spec(case.perturbations, cfg.num_layers), ExecutionConfig(dtype="float32"))
    for name, o, r32, r64 in zip(("video", "audio"), out, ref32, ref64):
        o = np.asarray(jnp.asarray(o, jnp.float32))
        print(assert_parity(f"lora/{name}", o, r32, r64), f"; max|ours-ref32| {np.max(np.abs(o - r32)):.3g}")


def test_two_loras_bf16_match_ltx_core_bit_for_bit(base, loras):
    """The pipelines' bf16 build with two LoRAs (ltx-core's order, one negative strength): identical bits."""
    src, _, cfg, tree, _, _ = base
    ref = ltx_core_transformer(src, [(loras[0], 0.8), (loras[1], -0.5)], "bfloat16")
    merged = merge_loras(tree, [(read_lora(loras[0], cfg), 0.8), (read_lora(loras[1], cfg), -0.5)])
    ours, theirs = _export_tensors(cfg, merged), ref.state_dict()
    for key, lazy in ours.items():
        got, want = lazy.make(), theirs[key[len(PREFIX):]]
        assert got.dtype == ml_dtypes.bfloat16 and want.dtype == torch.bfloat16, key
        assert np.array_equal(got.view(np.uint16), want.view(torch.int16).numpy().view(np.uint16)), key


def test_strength_zero_and_tree_untouched(base, loras):
    _, _, cfg, tree, _, _ = base
    lora = read_lora(loras[0], cfg)
    snapshot = {k: np.array(v.make()) for k, v in _export_tensors(cfg, tree).items()}
    merged = merge_lora(tree, lora, 0.0)
    merge_lora(tree, lora, 0.8)  # functional: the input tree is never modified
    for key, lazy in _export_tensors(cfg, merged).items():
        got, want = np.ascontiguousarray(lazy.make()), np.ascontiguousarray(snapshot[key])
        assert got.dtype == want.dtype and np.array_equal(got.view(np.uint8), want.view(np.uint8)), key
    assert np.array_equal(official_arrays(cfg, tree)["patchify_proj.weight"],
                          snapshot[PREFIX + "patchify_proj.weight"].astype(np.float32))


def test_alpha_is_read_and_ignored_as_ltx_core_does(base, loras):
    _, _, cfg, _, targets, root = base
    alpha = {f"diffusion_model.{m}.alpha": np.array(8.0, np.float32) for m in targets}
    path = write_lora(root / "alpha.safetensors", targets, 1, ranks={"transformer_blocks.0.ff.net.2": 2}, add=alpha)
    with pytest.warns(UserWarning, match="ignores them"):
        lora = read_lora(path, cfg)
    assert lora.alpha == 8.0
    plain = read_lora(loras[0], cfg)  # same A and B without alpha: the merge sees only (A, B), so it is the same
    assert plain.targets.keys() == lora.targets.keys()
    assert all(np.array_equal(x, y) for k in lora.targets for x, y in zip(lora.targets[k], plain.targets[k]))


def _raises(path: str, cfg, *parts: str) -> str:
    with pytest.raises(CheckpointError) as info:
        read_lora(path, cfg)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for part in parts:
        assert part in message, message
    return message


def test_lora_for_a_wider_model(base):
    _, _, cfg, _, targets, root = base
    wide = {m: (2 * o, 2 * i) for m, (o, i) in targets.items()}  # every width doubled
    path = write_lora(root / "wide.safetensors", wide, 3)
    first = min(wide)  # the writer sorts keys: the first tensor is that module's lora_A
    message = _raises(path, cfg, f"diffusion_model.{first}.lora_A.weight", f"{[RANK, wide[first][1]]}",
                      f"{list(targets[first])}")
    print(message)


def test_lora_for_a_deeper_model(base):
    _, _, cfg, _, targets, root = base
    extra = {"transformer_blocks.2.attn1.to_q": targets["transformer_blocks.0.attn1.to_q"]}
    path = write_lora(root / "deep.safetensors", {**targets, **extra}, 4)
    _raises(path, cfg, "diffusion_model.transformer_blocks.2.attn1.to_q.lora_A.weight", "layer 2",
            f"{cfg.num_layers} layers")


@pytest.mark.parametrize("key, expected", [
    ("diffusion_model.transformer_blocks.0.attn1.to_qkv.lora_A.weight", "not a Linear weight of this model"),
    ("lora_unet_transformer_blocks_0_attn1_to_q.lora_down.weight", "not a LoRA tensor"),
])
def test_foreign_keys(base, key, expected):
    _, _, cfg, _, targets, root = base
    path = write_lora(root / "foreign.safetensors", targets, 5, add={key: np.zeros((RANK, 32), ml_dtypes.bfloat16)})
    _raises(path, cfg, key, expected)


def test_half_pair(base):
    _, _, cfg, _, targets, root = base
    path = write_lora(root / "half.safetensors", {"proj_out": targets["proj_out"]}, 6)
    file = SafetensorsFile(path)
    names = file.keys()
    tensors = {k: np.array(file.read(k)) for k in names if not k.endswith("lora_B.weight")}
    write_safetensors(path, tensors, {})
    _raises(path, cfg, "diffusion_model.proj_out.lora_A.weight", "no lora_B")


def test_bad_files(base, loras, tmp_path):
    _, _, cfg, _, _, _ = base
    truncated = tmp_path / "truncated.safetensors"
    with open(loras[0], "rb") as f:
        data = f.read()
    truncated.write_bytes(data[: len(data) // 2])
    _raises(str(truncated), cfg)
    _raises(str(tmp_path / "missing.safetensors"), cfg, "no such file")
    _raises(str(tmp_path), cfg, "is a directory")
    pickle = tmp_path / "lora.pt"
    pickle.write_bytes(b"\x80\x04\x95" + b"\x00" * 32)
    _raises(str(pickle), cfg, "pickle")
    empty = tmp_path / "empty.safetensors"
    write_safetensors(str(empty), {}, {})
    _raises(str(empty), cfg, "no tensors")


def test_merge_refuses_a_tree_of_another_shape(base, loras):
    _, _, cfg, tree, _, _ = base
    lora = read_lora(loras[0], cfg)
    kernel = tree["blocks"]["attn1"]["to_q"]["kernel"]
    other = {**tree, "blocks": {**tree["blocks"], "attn1": {**tree["blocks"]["attn1"],
                                                            "to_q": {"kernel": kernel[:, :, :-1]}}}}
    with pytest.raises(ValueError, match=re.escape(f"{lora.path}: parameter blocks/attn1/to_q/kernel")):
        merge_lora(other, lora)
    assert os.path.isabs(lora.path)
