"""Official LTX-2 / LTX-2.3 LoRA files (e.g. `ltx-2.3-22b-distilled-lora-384.safetensors`): read, checked against
one model, and merged into its parameter tree as ltx-core 1.0.0 fuses them when it builds the transformer.

File layout (what ltx-core's `LTXV_LORA_COMFY_RENAMING_MAP` reads): for an adapted Linear whose checkpoint weight
is `<module>.weight` `[out, in]` (`checkpoint/ltx_keys.py`), `diffusion_model.<module>.lora_A.weight` `[rank, in]`
and `diffusion_model.<module>.lora_B.weight` `[out, rank]`. ltx-core strips `diffusion_model.`, so keys without it
are fused too; no alpha is applied (an `<module>.alpha` tensor is read, reported, and ignored as ltx-core does).

Fusion (ltx-core `loader/fuse_loras.py`), for a weight W of dtype T and LoRAs (A_j, B_j, strength s_j) of dtype L_j:
  D_j = round_Lj( round_Lj(B_j · s_j) @ A_j )   the product in the LoRA's dtype (float32 accumulation, one rounding)
  D   = D_1 if one LoRA, else round_T(Σ_j round_T(D_j))   in the order the LoRAs are given
  W'  = round_T(W + round_T(D))
The merged weight keeps the dtype of the tree's leaf: to get ltx-core's `build(dtype=float32)` of a bf16 file,
cast the tree first (`ltx_convert.params_as(tree, "float32")`), then merge (docs/design.md, "Official LoRA files").
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unityshots_jax.checkpoint.ltx_convert import TRANSFORMER_PREFIX, _file_key, _transformer_plan
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
from unityshots_jax.ltx.config import LTXConfig

LORA_PREFIX = "diffusion_model."
_SUFFIXES = {".lora_A.weight": "A", ".lora_B.weight": "B", ".alpha": "alpha"}
_BLOCK = re.compile(r"^transformer_blocks\.(\d+)\.(.+)$")

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class LoraFile:
    """A LoRA checked against one model.

    targets: our tree path of a Linear kernel (e.g. `("blocks", "attn1", "to_q", "kernel")`) → (A, B) in the file's
      orientation and dtype: A `[layers, rank, in]`, B `[layers, out, rank]` for a block weight (a layer the file
      does not adapt, or a smaller per-layer rank, is zero-filled: its product is exactly 0), A `[rank, in]`,
      B `[out, rank]` for a weight outside the blocks. The kernel is `[layers, in, out]` / `[in, out]`.
    rank: the largest rank in the file. alpha: the file's alpha if it has one (one value; None if absent or
      mixed); never applied. metadata: the safetensors header metadata.
    """

    path: str
    targets: Mapping[Path, tuple[np.ndarray, np.ndarray]]
    rank: int
    alpha: float | None
    metadata: Mapping[str, str]


def _target_index(cfg: LTXConfig) -> dict[str, tuple[Path, int | None, tuple[int, int]]]:
    """{module key (`<module>` of `<module>.weight`) → (our kernel path, layer or None, weight shape [out, in])}."""
    plan, wanted = _transformer_plan(cfg)
    index = {}
    for path, (leaf, _) in plan.items():
        if not leaf.transpose:  # only Linear kernels take a LoRA
            continue
        for layer in range(cfg.num_layers) if leaf.stacked else [None]:
            key = _file_key(leaf, layer)
            index[key[len(TRANSFORMER_PREFIX):-len(".weight")]] = (path, layer, wanted[key])
    return index


def _open(path: str) -> SafetensorsFile:
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; expected a LoRA .safetensors file")
    return SafetensorsFile(path)  # refuses missing, empty, truncated, pickle and zip files, naming `path`


def _split_key(file: SafetensorsFile, key: str, index: dict, num_layers: int) -> tuple[str, str]:
    """(module key, "A" / "B" / "alpha") of one tensor name; CheckpointError if this model has no such Linear."""
    name = key.removeprefix(LORA_PREFIX)
    suffix = next((s for s in _SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise CheckpointError(f"{file.path}: tensor {key} is not a LoRA tensor (expected "
                              f"{LORA_PREFIX}<module>.lora_A.weight / .lora_B.weight / .alpha)")
    module, kind = name[: -len(suffix)], _SUFFIXES[suffix]
    if module not in index:
        block = _BLOCK.match(module)
        if block and f"transformer_blocks.0.{block.group(2)}" in index:
            raise CheckpointError(f"{file.path}: tensor {key} adapts layer {block.group(1)}, but this model has "
                                  f"{num_layers} layers (a LoRA for another model?)")
        raise CheckpointError(f"{file.path}: tensor {key} adapts {module}.weight, which is not a Linear weight of "
                              "this model (a LoRA for another model?)")
    return module, kind


def _check_pair(file: SafetensorsFile, module: str, keys: dict, shape: tuple[int, int]) -> int:
    """Validate one module's lora_A / lora_B against the weight's [out, in]; returns the rank."""
    if "A" not in keys or "B" not in keys:
        have, need = ("A", "B") if "A" in keys else ("B", "A")
        raise CheckpointError(f"{file.path}: tensor {keys.get(have, keys.get('alpha'))} has no lora_{need} partner "
                              f"({module}.lora_{need}.weight)")
    (da, a_shape), (db, b_shape) = file.info(keys["A"]), file.info(keys["B"])
    out, fan_in = shape
    for key, got in ((keys["A"], a_shape), (keys["B"], b_shape)):
        if len(got) != 2:
            raise CheckpointError(f"{file.path}: tensor {key} has shape {list(got)}, expected 2 dimensions")
    rank = a_shape[0]
    if a_shape[1] != fan_in:
        raise CheckpointError(f"{file.path}: tensor {keys['A']} has shape {list(a_shape)}, but this model's "
                              f"{module}.weight is {list(shape)} [out, in]: expected [rank, {fan_in}]")
    if tuple(b_shape) != (out, rank):
        raise CheckpointError(f"{file.path}: tensor {keys['B']} has shape {list(b_shape)}, expected [{out}, {rank}] "
                              f"({module}.weight is {list(shape)} [out, in], {keys['A']} is {list(a_shape)})")
    if da != db or not jnp.issubdtype(da, jnp.floating):
        raise CheckpointError(f"{file.path}: tensors {keys['A']} ({da}) and {keys['B']} ({db}) need one float dtype")
    return rank


def _alpha(file: SafetensorsFile, alphas: list[str]) -> float | None:
    if not alphas:
        return None
    values = {float(np.asarray(file.read(k), np.float64).reshape(-1)[0]) for k in alphas}
    warnings.warn(f"{file.path}: has alpha tensors ({sorted(values)}); ltx-core 1.0.0 ignores them and so does "
                  "the merge (W + strength·B·A, no alpha/rank scaling)", stacklevel=3)
    return values.pop() if len(values) == 1 else None


def _stack(file: SafetensorsFile, entries: list, num_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of one kernel from its per-layer (layer, A key, B key) entries, zero-filled to the largest rank."""
    dtypes = {file.info(a)[0] for _, a, _ in entries}
    if len(dtypes) > 1:
        raise CheckpointError(f"{file.path}: tensor {entries[0][1]} and its other layers mix dtypes {sorted(map(str, dtypes))}")
    rank = max(file.info(a)[1][0] for _, a, _ in entries)
    (_, (_, fan_in)), (_, (out, _)) = file.info(entries[0][1]), file.info(entries[0][2])
    dtype = dtypes.pop()
    if entries[0][0] is None:
        return np.array(file.read(entries[0][1])), np.array(file.read(entries[0][2]))
    a_all, b_all = np.zeros((num_layers, rank, fan_in), dtype), np.zeros((num_layers, out, rank), dtype)
    for layer, a_key, b_key in entries:
        r = file.info(a_key)[1][0]
        a_all[layer, :r], b_all[layer, :, :r] = file.read(a_key), file.read(b_key)
    return a_all, b_all


def read_lora(path: str, cfg: LTXConfig) -> LoraFile:
    """Read an official LoRA file and check every tensor against the transformer of `cfg` before any merge.

    Raises CheckpointError (a ValueError) naming `path` and the first offending tensor (in file order): a tensor
    that is not a LoRA tensor, a module this model does not have (another architecture, or a layer beyond
    `cfg.num_layers`), lora_A `[rank, in]` / lora_B `[out, rank]` that do not fit the weight `[out, in]` (both
    shapes named), a lora_A without its lora_B; also a missing, non-safetensors, pickle or truncated file.
    """
    file = _open(path)
    index = _target_index(cfg)
    modules: dict[str, dict[str, str]] = {}
    names = file.keys()  # file (header) order: the first offending tensor is named
    for key in names:
        module, kind = _split_key(file, key, index, cfg.num_layers)
        modules.setdefault(module, {})[kind] = key
    if not modules:
        raise CheckpointError(f"{path}: holds no tensors; not a LoRA file")
    per_kernel: dict[Path, list] = {}
    ranks = []
    for module, keys in modules.items():
        kernel, layer, shape = index[module]
        if keys.keys() == {"alpha"}:
            raise CheckpointError(f"{path}: tensor {keys['alpha']} has no lora_A / lora_B for {module}")
        ranks.append(_check_pair(file, module, keys, shape))
        per_kernel.setdefault(kernel, []).append((layer, keys["A"], keys["B"]))
    alpha = _alpha(file, [keys["alpha"] for keys in modules.values() if "alpha" in keys])
    targets = {kernel: _stack(file, entries, cfg.num_layers) for kernel, entries in per_kernel.items()}
    return LoraFile(os.path.abspath(path), targets, max(ranks), alpha, dict(file.metadata))


def _delta(a: np.ndarray, b: np.ndarray, strength: float, dtype: jnp.dtype) -> jax.Array:
    """strength·B@A as ltx-core computes it (in the LoRA's dtype), cast to `dtype`, in our kernel orientation.

    a `[..., rank, in]`, b `[..., out, rank]` → `[..., in, out]`.
    """
    lora_dtype = a.dtype
    scaled = (jnp.asarray(b, jnp.float32) * jnp.float32(strength)).astype(lora_dtype)  # torch: b * coef
    # (B·s) @ A accumulated in float32 and rounded once to the LoRA dtype (torch's CPU/GPU bf16 matmul), written
    # straight into the kernel orientation; HIGHEST: no TF32 / bf16 passes on GPU / TPU
    product = jnp.einsum("...ri,...or->...io", jnp.asarray(a, jnp.float32), scaled.astype(jnp.float32),
                         precision=jax.lax.Precision.HIGHEST)
    return product.astype(lora_dtype).astype(dtype)


def _fused(weight: jax.Array, deltas: list[jax.Array]) -> jax.Array:
    """round_T(W + round_T(ΣD)) with T the weight's dtype, sums carried in at least float32 (torch's opmath).

    Every rounding here and in `_delta` is its own eager op, never one jitted program: XLA may drop an
    f32→bf16→f32 round trip inside a program (`xla_allow_excess_precision`), and the match would be lost.
    """
    dtype = weight.dtype
    wide = jnp.promote_types(dtype, jnp.float32)
    delta = deltas[0] if len(deltas) == 1 else sum(d.astype(wide) for d in deltas).astype(dtype)
    return (delta.astype(wide) + weight.astype(wide)).astype(dtype)


def _get(tree: dict, path: Path):
    node = tree
    for part in path:
        node = node[part]
    return node


def _replaced(tree: dict, path: Path, value) -> dict:
    """A copy of `tree` with the leaf at `path` replaced (only the dicts along `path` are copied)."""
    head, *rest = path
    return {**tree, head: _replaced(tree[head], tuple(rest), value) if rest else value}


def merge_loras(tree: dict, loras: Sequence[tuple[LoraFile, float]]) -> dict:
    """A new parameter tree with every (LoRA, strength) fused into its kernels, in the order given (ltx-core's
    `.lora()` order). `tree` is not modified; leaves no LoRA adapts are shared. A strength of 0 contributes
    nothing (all strengths 0: the tree comes back unchanged, as ltx-core then skips fusion).
    Raises ValueError if a kernel a LoRA adapts is missing from `tree` or has another shape.
    """
    active = [(lora, float(s)) for lora, s in loras if float(s) != 0.0]
    order: dict[Path, None] = {}
    for lora, _ in active:
        order.update(dict.fromkeys(lora.targets))
    out = tree
    for path in order:
        try:
            weight = jnp.asarray(_get(tree, path))
        except (KeyError, TypeError):
            owner = next(lora for lora, _ in active if path in lora.targets)
            raise ValueError(f"{owner.path}: the tree has no parameter {'/'.join(path)}") from None
        deltas = []
        for lora, strength in active:
            if path not in lora.targets:
                continue
            a, b = lora.targets[path]
            expected = (*a.shape[:-2], a.shape[-1], b.shape[-2])
            if tuple(weight.shape) != expected:
                raise ValueError(f"{lora.path}: parameter {'/'.join(path)} has shape {list(weight.shape)}, the LoRA "
                                 f"adapts {list(expected)} (read it with this model's config)")
            if not jnp.issubdtype(weight.dtype, jnp.floating):
                raise ValueError(f"{lora.path}: parameter {'/'.join(path)} has dtype {weight.dtype}, not a float")
            deltas.append(_delta(a, b, strength, weight.dtype))
        out = _replaced(out, path, _fused(weight, deltas))
    return out


def merge_lora(tree: dict, lora: LoraFile, strength: float = 1.0) -> dict:
    """`merge_loras(tree, [(lora, strength)])`: one LoRA fused into a new tree."""
    return merge_loras(tree, [(lora, strength)])
