"""LTX-2.3's text embeddings processor (FeatureExtractorV2 + video and audio connectors) and its weights.

The tensors live in the official LTX checkpoint, next to the transformer (architecture doc §3, Appendix A.2):
  text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}
  model.diffusion_model.{video,audio}_embeddings_connector.*
and, after `unityshots convert`, verbatim in the converted directory's `extras.safetensors`. Their configuration
is the checkpoint's `transformer` config (official: `metadata["config"]`; converted: `config.json`
`checkpoint_config`). Tensors are read one at a time, every one checked before any is used.
"""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
from unityshots_jax.sharding import Rules
from unityshots_jax.text.connector import ConnectorConfig, EmbeddingsConnector
from unityshots_jax.text.feature_extractor import FeatureExtractorV2
from unityshots_jax.text.gemma3.loading import place

CONNECTOR_FILE_PREFIX = "model.diffusion_model.{stream}_embeddings_connector."
PROJECTION_FILE_PREFIX = "text_embedding_projection."
# FeatureExtractorV2 is selected by these exact values (ltx-core 1.0.0 `_create_feature_extractor`)
_V2_CONFIG = {"caption_proj_before_connector": True, "caption_projection_first_linear": False,
              "caption_proj_input_norm": False, "caption_projection_second_linear": False}
_RENAMES = {"to_out": "to_out.0", "proj_in": "net.0.proj", "proj_out": "net.2", "kernel": "weight"}
_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16)}


class TextWeightsError(CheckpointError):
    """LTX text-side weights that cannot be used; the message names the file, tensor or config key."""


class TextEmbeddings(nnx.Module):
    """hidden states → (video context, audio context), as ltx-core's `EmbeddingsProcessor.process_hidden_states`."""

    def __init__(self, dim: int, num_states: int, video: ConnectorConfig, audio: ConnectorConfig, rngs: nnx.Rngs):
        self.feature_extractor = FeatureExtractorV2(dim, num_states, video.dim, audio.dim, rngs)
        self.video_connector = EmbeddingsConnector(video, rngs)
        self.audio_connector = EmbeddingsConnector(audio, rngs)

    def __call__(self, states: jnp.ndarray, mask: jnp.ndarray, attention: str = "dense") -> tuple[jnp.ndarray, jnp.ndarray]:
        """states `[num_states, batch, tokens, dim]`, mask `[batch, tokens]` → (`[batch, tokens, Dv]`,
        `[batch, tokens, Da]`); the contexts' mask is all ones (registers fill the padding)."""
        video, audio = self.feature_extractor(states, mask)
        return self.video_connector(video, mask, attention), self.audio_connector(audio, mask, attention)


def projection_configs(cfg: dict, where: str) -> tuple[ConnectorConfig, ConnectorConfig]:
    """(video, audio) connector configs of a 2.3 `transformer` config; other layouts are refused."""
    for key, want in _V2_CONFIG.items():
        if key not in cfg:
            raise TextWeightsError(f"{where}: transformer config has no {key!r}: an LTX-2 (19B) text projection "
                                   "(FeatureExtractorV1), which the ltx23 text encoder does not implement")
        if cfg[key] != want:
            raise TextWeightsError(f"{where}: transformer config {key} = {cfg[key]!r}, FeatureExtractorV2 needs {want!r}")
    video = ConnectorConfig.from_transformer_config(cfg, audio=False)
    audio = ConnectorConfig.from_transformer_config(cfg, audio=True)
    for conn, heads, head_dim in ((video, "num_attention_heads", "attention_head_dim"),
                                  (audio, "audio_num_attention_heads", "audio_attention_head_dim")):
        width = int(cfg.get(heads, 0)) * int(cfg.get(head_dim, 0))
        if width != conn.dim:
            raise TextWeightsError(f"{where}: {heads}×{head_dim} = {width} differs from the connector width {conn.dim}")
    return video, audio


def open_text_weights(path: str) -> tuple[dict, SafetensorsFile]:
    """(the `transformer` config, the safetensors file holding the text tensors) of an official checkpoint file
    or a converted directory."""
    if os.path.isdir(path):
        cfg_path, tensors = os.path.join(path, "config.json"), os.path.join(path, "extras.safetensors")
        for p in (cfg_path, tensors):
            if not os.path.isfile(p):
                raise TextWeightsError(f"{p}: missing; expected a directory written by 'unityshots convert'")
        try:
            with open(cfg_path) as f:
                full = json.load(f).get("checkpoint_config")
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise TextWeightsError(f"{cfg_path}: unreadable ({e})") from None
        where, file = cfg_path, SafetensorsFile(tensors)
    else:
        file = SafetensorsFile(path)
        where = path
        try:
            full = json.loads(file.metadata["config"])
        except KeyError:
            raise TextWeightsError(f"{path}: no metadata['config']; not an official LTX checkpoint") from None
        except json.JSONDecodeError as e:
            raise TextWeightsError(f"{path}: metadata['config'] is not JSON ({e})") from None
    if not isinstance(full, dict) or not isinstance(full.get("transformer"), dict):
        raise TextWeightsError(f"{where}: the checkpoint config has no 'transformer' section")
    return full["transformer"], file


def _file_key(path: tuple[str, ...]) -> tuple[str, bool]:
    """(file key, with `{i}` for a stacked block; transpose?) of one of our parameter paths."""
    root, rest = path[0], list(path[1:])
    if root == "feature_extractor":
        prefix = PROJECTION_FILE_PREFIX
    else:
        prefix = CONNECTOR_FILE_PREFIX.format(stream=root.split("_")[0])
    if rest[0] == "blocks":
        rest[0] = "transformer_1d_blocks.{i}"
    transpose = rest[-1] == "kernel"
    if rest[-1] in ("q_norm", "k_norm"):
        rest.append("weight")
    return prefix + ".".join(_RENAMES.get(p, p) for p in rest), transpose


def load_text_embeddings(path: str, dim: int, num_states: int, dtype: str = "float32",
                         mesh: Mesh | None = None, rules: Rules | None = None) -> TextEmbeddings:
    """The processor of the checkpoint `path` (file or converted directory) for a Gemma of width `dim` with
    `num_states` hidden states, parameters in `dtype` (sharded over `mesh` by their logical axes under `rules`, if given)."""
    cfg, file = open_text_weights(path)
    video, audio = projection_configs(cfg, path)
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(lambda: TextEmbeddings(dim, num_states, video, audio, nnx.Rngs(0)))
    state = nnx.state(model, nnx.Param)
    flat = list(nnx.to_flat_state(state))
    present = set(file.keys())
    plan = []
    for p, leaf in flat:
        path_s = tuple(str(x) for x in p)
        key, transpose = _file_key(path_s)
        shape = tuple(leaf.get_value().shape)
        layers = shape[0] if "{i}" in key else None
        one = shape[1:] if layers else shape
        one = one[::-1] if transpose else one
        for i in range(layers) if layers else [None]:
            name = key.format(i=i)
            if name not in present:
                raise TextWeightsError(f"{file.path}: missing tensor {name}")
            got = tuple(file.info(name)[1])
            if got != one:
                hint = (f" (a Gemma of width {dim} with {num_states} hidden states needs [out, {dim * num_states}])"
                        if "aggregate_embed.weight" in name else "")
                raise TextWeightsError(f"{file.path}: tensor {name} has shape {list(got)}, expected {list(one)}{hint}")
        plan.append((leaf, key, transpose, layers))
    wanted = {key.format(i=i) for _, key, _, n in plan for i in (range(n) if n else [None])}
    prefixes = (PROJECTION_FILE_PREFIX,) + tuple(CONNECTOR_FILE_PREFIX.format(stream=s) for s in ("video", "audio"))
    extra = sorted(k for k in present - wanted if k.startswith(prefixes))
    if extra:
        raise TextWeightsError(f"{file.path}: unexpected tensor {extra[0]} for this text-connector configuration")
    np_dtype = _DTYPES[dtype]
    for leaf, key, transpose, layers in plan:
        parts = [file.read(key.format(i=i)) for i in (range(layers) if layers else [None])]
        parts = [(t.T if transpose else t).astype(np_dtype) for t in parts]
        leaf.set_value(place(leaf, np.stack(parts) if layers else parts[0], mesh, rules))
    nnx.update(model, state)
    return model
