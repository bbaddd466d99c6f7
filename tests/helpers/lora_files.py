"""Official-layout LoRA files for the tests: which Linear weights a tiny checkpoint has, and a random bf16 LoRA over
them in the official key layout (`diffusion_model.<module>.lora_A.weight` `[rank, in]`, `.lora_B.weight`
`[out, rank]`)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from helpers.checkpoints import PREFIX
from unityshots_jax.checkpoint.ltx_keys import CONNECTOR_PREFIXES
from unityshots_jax.checkpoint.safetensors_io import SafetensorsFile, write_safetensors

RANK = 4
# outside the blocks: patchify / output projections and an AdaLN linear (the block weights are all adapted)
NON_BLOCK = ("patchify_proj", "audio_patchify_proj", "proj_out", "audio_proj_out", "adaln_single.linear",
             "audio_adaln_single.emb.timestep_embedder.linear_1")


def linear_weights(path: str) -> dict[str, tuple[int, int]]:
    """{module: (out, in)} of the transformer's Linear weights in an official checkpoint (2-D `.weight` tensors)."""
    file = SafetensorsFile(path)
    out = {}
    names = file.keys()
    for key in names:
        if key.startswith(PREFIX) and not key.startswith(CONNECTOR_PREFIXES) and key.endswith(".weight"):
            shape = file.info(key)[1]
            if len(shape) == 2:
                out[key[len(PREFIX):-len(".weight")]] = shape
    return out


def lora_targets(weights: dict) -> dict[str, tuple[int, int]]:
    """Every block Linear (gate logits only in layer 1: a layer the file leaves out) plus `NON_BLOCK`."""
    keep = {}
    for module, shape in weights.items():
        if module.startswith("transformer_blocks."):
            if "to_gate_logits" not in module or module.startswith("transformer_blocks.1."):
                keep[module] = shape
        elif module in NON_BLOCK:
            keep[module] = shape
    return keep


def write_lora(path, targets: dict, seed: int, *, prefix: str = "diffusion_model.", ranks: dict | None = None,
               add: dict | None = None) -> str:
    """An official-layout bf16 LoRA: A `[rank, in]`, B `[out, rank]` ~ 0.2·N(0, 1) per module of `targets`."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for module, (out, fan_in) in targets.items():
        r = (ranks or {}).get(module, RANK)
        tensors[f"{prefix}{module}.lora_A.weight"] = (0.2 * rng.standard_normal((r, fan_in))).astype(ml_dtypes.bfloat16)
        tensors[f"{prefix}{module}.lora_B.weight"] = (0.2 * rng.standard_normal((out, r))).astype(ml_dtypes.bfloat16)
    tensors.update(add or {})
    write_safetensors(str(path), tensors, {"format": "pt"})
    return str(path)
