"""Every non-transformer component of an official LTX single file, identified and checked strictly at convert time.

Each component has its own expected tensor table, derived from the file's `metadata["config"]` by the component's
own loader code (so convert and the loaders can never disagree):
  video VAE  `vae.{encoder,decoder}.*`, `vae.per_channel_statistics.*`     (config section `vae`)
  audio VAE  `audio_vae.{encoder,decoder}.*`, `audio_vae.per_channel_statistics.*` (config section `audio_vae`)
  vocoder    `vocoder.*`                                                    (config section `vocoder`)
A component whose config section is present must have every expected tensor with its exact shape and nothing
else under its prefixes; a tensor under a component prefix whose section is absent belongs to no component.
Either is a `CheckpointError` naming the tensor. The text connectors / projection are routed by prefix here and
checked by the text loader (their Gemma width is not in the file's config).
"""

from __future__ import annotations

import dataclasses

from unityshots_jax.checkpoint.ltx_keys import CONNECTOR_PREFIXES
from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile

TEXT_PREFIXES = CONNECTOR_PREFIXES + ("text_embedding_projection.",)
COMPONENT_PREFIXES = {"video_vae": ("vae.",), "audio_vae": ("audio_vae.",), "vocoder": ("vocoder.",)}
CONFIG_SECTION = {"video_vae": "vae", "audio_vae": "audio_vae", "vocoder": "vocoder"}


@dataclasses.dataclass(frozen=True)
class Component:
    """One checked component: its `name` and the file keys it owns (file order)."""

    name: str
    keys: tuple[str, ...]


def _video_vae_table(config: dict) -> dict[str, tuple[int, ...]]:
    from unityshots_jax.vae.video.config import vae_config_from_checkpoint
    from unityshots_jax.vae.video.keys import video_vae_tensors

    return video_vae_tensors(vae_config_from_checkpoint(config))


def _audio_vae_table(config: dict) -> dict[str, tuple[int, ...]]:
    from flax import nnx

    from unityshots_jax.vae.audio.config import audio_vae_config
    from unityshots_jax.vae.audio.decoder import AudioDecoder
    from unityshots_jax.vae.audio.encoder import AudioEncoder
    from unityshots_jax.vae.audio.loading import expected_tensors, vae_key

    cfg = audio_vae_config(config)
    out: dict[str, tuple[int, ...]] = {}
    for part, cls in (("encoder", AudioEncoder), ("decoder", AudioDecoder)):
        with nnx.use_eager_sharding(False):
            module = nnx.eval_shape(lambda cls=cls: cls(cfg))
        out.update(expected_tensors(module, vae_key(part)))
    return out


def _vocoder_table(config: dict) -> dict[str, tuple[int, ...]]:
    from flax import nnx

    from unityshots_jax.vae.audio.bwe import VocoderWithBWE
    from unityshots_jax.vae.audio.config import VocoderWithBWEConfig, vocoder_config
    from unityshots_jax.vae.audio.loading import UNUSED_OK, expected_tensors, vocoder_key
    from unityshots_jax.vae.audio.vocoder import Vocoder

    cfg = vocoder_config(config)
    with nnx.use_eager_sharding(False):
        module = nnx.eval_shape(lambda: VocoderWithBWE(cfg) if isinstance(cfg, VocoderWithBWEConfig) else Vocoder(cfg))
    table: dict = expected_tensors(module, vocoder_key)
    if isinstance(cfg, VocoderWithBWEConfig):  # carried by the 2.3 file, never read: optional, any shape
        table.update({key: None for key in UNUSED_OK})
    return table


_TABLES = {"video_vae": _video_vae_table, "audio_vae": _audio_vae_table, "vocoder": _vocoder_table}


def expected_component_tensors(config: dict, where: str) -> dict[str, dict[str, tuple[int, ...]]]:
    """{component: {file key: shape}} of every component whose config section `config` (the full metadata config)
    holds; a config the port refuses is a `CheckpointError` naming `where` and the option."""
    out = {}
    for name, table in _TABLES.items():
        if CONFIG_SECTION[name] not in config:
            continue
        try:
            out[name] = table(config)
        except ValueError as e:
            raise CheckpointError(f"{where}: {name.replace('_', ' ')} config: {e}") from None
    return out


def check_components(file: SafetensorsFile, config: dict, keys: list[str]) -> list[Component]:
    """Assign every non-transformer tensor in `keys` (file order) to a component and check each strictly.

    Returns the components found (text first, then video VAE, audio VAE, vocoder), each with its keys in file order.
    """
    tables = expected_component_tensors(config, file.path)
    owned: dict[str, list[str]] = {"text": [], **{name: [] for name in COMPONENT_PREFIXES}}
    for key in keys:
        if key.startswith(TEXT_PREFIXES):
            owned["text"].append(key)
            continue
        name = next((n for n, prefixes in COMPONENT_PREFIXES.items() if key.startswith(prefixes)), None)
        if name is None:
            raise CheckpointError(f"{file.path}: tensor {key} belongs to no component (transformer, text connectors, "
                                  "video VAE, audio VAE, vocoder)")
        if name not in tables:
            raise CheckpointError(f"{file.path}: tensor {key} belongs to the {name.replace('_', ' ')}, but the "
                                  f"checkpoint config has no {CONFIG_SECTION[name]!r} section")
        owned[name].append(key)
    for name, table in tables.items():
        present = set(owned[name])
        missing = [k for k, shape in table.items() if k not in present and shape is not None]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise CheckpointError(f"{file.path}: {name.replace('_', ' ')}: tensor {missing[0]} is missing "
                                  f"(expected shape {list(table[missing[0]])}){more}")
        for key in owned[name]:
            if key not in table:
                raise CheckpointError(f"{file.path}: {name.replace('_', ' ')}: unexpected tensor {key} for this "
                                      "configuration")
            shape = tuple(file.info(key)[1])
            if table[key] is not None and shape != tuple(table[key]):
                raise CheckpointError(f"{file.path}: {name.replace('_', ' ')}: tensor {key} has shape {list(shape)}, "
                                      f"the config needs {list(table[key])}")
    return [Component(name, tuple(k)) for name, k in owned.items() if k]
