"""Load the audio VAE and vocoder from the official single-file checkpoint or a converted directory, strictly.

Sources: an official `.safetensors` (config in `metadata["config"]`) or a directory written by
`unityshots convert` (`config.json` → `checkpoint_config`, tensors verbatim in `extras.safetensors`); both hold
the same file keys. Tensors are read one at a time through memory maps. Our attribute paths mirror ltx-core's
module paths, so each parameter / buffer has one key: `audio_vae.{encoder,decoder}.<path>`,
`audio_vae.per_channel_statistics.{std,mean}-of-means` (shared), `vocoder.<path>`. A missing tensor, a wrong
shape, or an unused tensor under a component's prefix is a `CheckpointError` naming it.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.component_loading import CheckpointSource, check_tensor, open_source, refuse_unused
from unityshots_jax.vae.audio.config import (
    AudioConfigError,
    AudioVAEConfig,
    VocoderConfig,
    VocoderWithBWEConfig,
    audio_vae_config,
    vocoder_config,
)
from unityshots_jax.vae.audio.decoder import AudioDecoder
from unityshots_jax.vae.audio.encoder import AudioEncoder
from unityshots_jax.vae.audio.layers import Buffer

M = TypeVar("M", bound=nnx.Module)
STATS_PREFIX = "audio_vae.per_channel_statistics."
# Tensors the 2.3 file carries that inference never reads (the BWE's inverse STFT basis).
UNUSED_OK = ("vocoder.mel_stft.stft_fn.inverse_basis",)


WeightSource = CheckpointSource  # the one weights source of the component loaders


def open_weights(path: str) -> WeightSource:
    """Open an official single-file checkpoint or a converted directory (`config.json` + `extras.safetensors`)."""
    return open_source(path)


def _variables(module: nnx.Module):
    for path, node in nnx.iter_graph(module):
        if isinstance(node, (nnx.Param, Buffer)):
            yield tuple(str(p) for p in path), node


def checkpoint_shape(var: nnx.Variable) -> tuple[int, ...]:
    """The checkpoint shape of a variable (its shape, un-permuted by its `torch_perm`)."""
    perm = var.get_metadata().get("torch_perm")
    return tuple(var.shape) if perm is None else tuple(var.shape[perm.index(i)] for i in range(len(perm)))


def expected_tensors(module: nnx.Module, key_of: Callable[[tuple[str, ...]], str]) -> dict[str, tuple[int, ...]]:
    """{checkpoint key: checkpoint shape} of every Param / Buffer of `module` (works on an abstract module)."""
    return {key_of(path): checkpoint_shape(var) for path, var in _variables(module)}


def fill_module(module: M, source: WeightSource, key_of: Callable[[tuple[str, ...]], str],
                owned: Iterable[str], *, dtype=jnp.float32, what: str) -> M:
    """Fill every Param / Buffer of `module` from `source.file[key_of(path)]` (permuted by its `torch_perm`).

    owned: key prefixes of this component; a tensor under them that no variable uses is an error.
    """
    file, used = source.file, set()
    available = set(file.keys())
    for path, var in _variables(module):
        key = key_of(path)
        check_tensor(source, what, key, checkpoint_shape(var), available)
        array = np.asarray(file.read(key), np.float32)
        perm = var.get_metadata().get("torch_perm")
        var.set_value(jnp.asarray(array if perm is None else np.transpose(array, perm), dtype))
        used.add(key)
    refuse_unused(source, what, owned, used, UNUSED_OK)
    return module


def _build(factory: Callable[[], M]) -> M:
    with nnx.use_eager_sharding(False):
        return factory()


def vae_key(part: str, available: frozenset[str] = frozenset()) -> Callable[[tuple[str, ...]], str]:
    """Key function of the encoder / decoder. The statistics are read from the shared
    `audio_vae.per_channel_statistics.*` (the released layout), or from `audio_vae.<part>.per_channel_statistics.*`
    when only that is in `available` (ltx-core's key filter maps both to the same buffers)."""

    def key(path: tuple[str, ...]) -> str:
        if path[0] == "per_channel_statistics":
            name = path[1].replace("_of_", "-of-")
            local = f"audio_vae.{part}.per_channel_statistics.{name}"
            return local if local in available and STATS_PREFIX + name not in available else STATS_PREFIX + name
        return f"audio_vae.{part}." + ".".join(path)

    return key


def _require_entry(source: WeightSource, entry: str) -> None:
    if entry not in source.config:
        raise AudioConfigError(f"{source.path}: the checkpoint config has no {entry!r} entry (no audio weights?)")


def vocoder_key(path: tuple[str, ...]) -> str:
    return "vocoder." + ".".join(path)


def load_audio_vae(path: str | WeightSource, *, dtype=jnp.float32,
                   parts: tuple[str, ...] = ("encoder", "decoder")) -> tuple[AudioVAEConfig, dict[str, nnx.Module]]:
    """(config, {"encoder": AudioEncoder, "decoder": AudioDecoder}) from a checkpoint file or converted directory."""
    source = path if isinstance(path, WeightSource) else open_weights(path)
    _require_entry(source, "audio_vae")
    cfg = audio_vae_config(source.config)
    classes = {"encoder": AudioEncoder, "decoder": AudioDecoder}
    out = {}
    for part in parts:
        module = _build(lambda cls=classes[part]: cls(cfg))
        key_of = vae_key(part, frozenset(source.file.keys()))
        out[part] = fill_module(module, source, key_of, (f"audio_vae.{part}.",), dtype=dtype,
                                what=f"audio VAE {part}")
    return cfg, out


def load_vocoder(path: str | WeightSource, *, dtype=jnp.float32):
    """(config, module): `VocoderWithBWE` (2.3) or a plain HiFi-GAN `Vocoder` (19B), from the `vocoder.` tensors."""
    from unityshots_jax.vae.audio.bwe import VocoderWithBWE
    from unityshots_jax.vae.audio.vocoder import Vocoder

    source = path if isinstance(path, WeightSource) else open_weights(path)
    _require_entry(source, "vocoder")
    cfg: VocoderConfig | VocoderWithBWEConfig = vocoder_config(source.config)
    module = _build(lambda: VocoderWithBWE(cfg) if isinstance(cfg, VocoderWithBWEConfig) else Vocoder(cfg))
    module = fill_module(module, source, vocoder_key, ("vocoder.",), dtype=dtype, what="vocoder")
    return cfg, module
