"""Tiny official-layout checkpoints and safetensors surgery for the tests.

`make_checkpoint` goes through the PyTorch reference helpers (ltx-core 1.0.0 random models saved in the official
single-file layout); `rewrite` edits a file with our own torch-free writer, so a test can drop, add, reshape or
recast tensors and change the header metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os

import ml_dtypes
import numpy as np

from unityshots_jax.checkpoint.safetensors_io import SafetensorsFile, write_safetensors

PREFIX = "model.diffusion_model."
VAE_KEY = "vae.decoder.conv_in.conv.weight"


@dataclasses.dataclass(frozen=True)
class Spec:
    """One tiny checkpoint: layout ("22b" / "19b"), RoPE, model type, sizes and switches."""

    layout: str = "22b"
    rope: str = "split"
    model_type: str = "audio_video"
    num_layers: int = 2
    heads: int = 2
    head_dim: int = 16
    audio_heads: int = 2
    audio_head_dim: int = 8
    frequencies_precision: str = "float64"
    explicit_keys: bool = False  # 19b only: write the 2.3-only switches as explicit False values
    seed: int = 0
    vae_extra: bool = False  # add a non-transformer `vae.*` tensor

    @property
    def name(self) -> str:
        fields = [f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v != getattr(Spec, k)]
        return ",".join(fields) or "default"

    def transformer_config(self) -> dict:
        from unityshots_jax.reference.tiny_configs import tiny_19b_config, tiny_transformer_config

        sizes = dict(num_layers=self.num_layers, heads=self.heads, head_dim=self.head_dim, audio_heads=self.audio_heads,
                     audio_head_dim=self.audio_head_dim, rope_type=self.rope,
                     frequencies_precision=self.frequencies_precision)
        if self.layout == "19b":
            return tiny_19b_config(explicit_keys=self.explicit_keys, **sizes)
        assert self.layout == "22b" and not self.explicit_keys
        return tiny_transformer_config(**sizes)


def make_checkpoint(spec: Spec, path: str) -> str:
    """Write a random reference model of `spec` (plus fake connector / text-projection tensors) to `path`."""
    from unityshots_jax.reference.ltx_reference import (
        add_fake_connector_tensors,
        build_random_reference,
        save_official_checkpoint,
    )

    config = spec.transformer_config()
    model = build_random_reference(config, spec.seed, model_type=spec.model_type)
    extras = add_fake_connector_tensors(config, spec.seed)
    if spec.vae_extra:
        extras[VAE_KEY] = np.random.default_rng(spec.seed).standard_normal((8, 4, 3, 3, 3)).astype(np.float32)
    save_official_checkpoint(model, config, path, extra_tensors=extras)
    return path


def read_all(path: str) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """(tensors as in-memory arrays, metadata, tensor order) of a safetensors file."""
    f = SafetensorsFile(path)
    return {k: np.array(f.read(k)) for k in f.keys()}, dict(f.metadata), f.keys()


def rewrite(
    src: str,
    dst: str,
    *,
    drop: tuple[str, ...] = (),
    add: dict[str, np.ndarray] | None = None,
    replace: dict[str, np.ndarray] | None = None,
    metadata: dict[str, str] | None = None,
    cast=None,
) -> str:
    """Copy `src` to `dst` with tensors dropped / added / replaced, all floats cast to `cast`, new metadata."""
    tensors, meta, order = read_all(src)
    for key in drop:
        del tensors[key]
        order.remove(key)
    for key, value in (replace or {}).items():
        assert key in tensors, key
        tensors[key] = value
    for key, value in (add or {}).items():
        assert key not in tensors, key
        tensors[key] = value
        order.append(key)
    if cast is not None:
        tensors = {k: v.astype(cast) if np.issubdtype(v.dtype, np.floating) else v for k, v in tensors.items()}
    write_safetensors(dst, tensors, meta if metadata is None else metadata, order)
    return dst


def to_bf16(src: str, dst: str) -> str:
    """`src` with every tensor cast to bfloat16 (same metadata, same tensor order)."""
    return rewrite(src, dst, cast=ml_dtypes.bfloat16)


def with_config(src: str, dst: str, transform) -> str:
    """`src` with metadata['config'] replaced by transform(parsed config)."""
    _, meta, _ = read_all(src)
    meta = dict(meta)
    meta["config"] = json.dumps(transform(json.loads(meta["config"])))
    return rewrite(src, dst, metadata=meta)


def leftovers(parent: str, name: str) -> list[str]:
    """Temporary build directories / files of `name` left in `parent` (".name.partial-*", "name.tmp-*")."""
    if not os.path.isdir(parent):
        return []
    return [e for e in os.listdir(parent) if e.startswith(f".{name}.partial-") or e.startswith(f"{name}.tmp-")]
