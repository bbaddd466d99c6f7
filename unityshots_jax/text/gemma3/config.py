"""Gemma-3 text-tower configuration, read from a Hugging Face `config.json`.

Accepts the multimodal `Gemma3ForConditionalGeneration` config (its `text_config`) and the text-only
`Gemma3ForCausalLM` / `Gemma3TextModel` config (`model_type: gemma3_text`). Fields a config leaves out take the
defaults of transformers 4.57.6's `Gemma3TextConfig`, as transformers itself would.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np


class GemmaConfigError(ValueError):
    """A Gemma-3 directory or config that cannot be used; the message names the file and field."""


# transformers 4.57.6 `Gemma3TextConfig.__init__` defaults (the fields the text tower reads).
_TEXT_DEFAULTS = {
    "vocab_size": 262_208,
    "hidden_size": 2304,
    "intermediate_size": 9216,
    "num_hidden_layers": 26,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "sliding_window_pattern": 6,
    "layer_types": None,
    "attn_logit_softcapping": None,
    "use_bidirectional_attention": False,
}
_LAYER_TYPES = ("sliding_attention", "full_attention")

# The text config of the Gemma-3 12B LTX-2.3 uses (ltx-core 1.0.0 `GEMMA3_CONFIG_FOR_LTX.text_config`, the fields
# the tower reads; `google/gemma-3-12b-it-qat-q4_0-unquantized`), for plans and shape checks without the download.
GEMMA3_12B_LTX_TEXT = {
    "model_type": "gemma3_text", "vocab_size": 262_208, "hidden_size": 3840, "intermediate_size": 15360,
    "num_hidden_layers": 48, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 256,
    "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000, "rope_local_base_freq": 10_000,
    "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024, "sliding_window_pattern": 6,
    "hidden_activation": "gelu_pytorch_tanh", "attention_bias": False, "attn_logit_softcapping": None,
}


@dataclasses.dataclass(frozen=True)
class Gemma3TextConfig:
    """What the text tower needs. `sliding[i]` is True for a local (sliding-window) layer.

    rope_scaling_factor: linear RoPE scaling of the global layers (1.0 = none).
    image_token_id: id the multimodal model maps to 0 before embedding when it lies outside the vocabulary
    (`Gemma3Model.forward`), else None.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    rope_local_base_freq: float
    rope_scaling_factor: float
    query_pre_attn_scalar: float
    sliding_window: int
    sliding: tuple[bool, ...]
    image_token_id: int | None = None

    @property
    def num_states(self) -> int:
        """Hidden states returned: the embeddings plus one per layer."""
        return self.num_layers + 1

    @property
    def embed_scale(self) -> np.float32:
        """√hidden as transformers stores it (a float32 buffer; cast to the weights' dtype when used)."""
        return np.float32(math.sqrt(self.hidden_size))

    def inv_freq(self, local: bool) -> np.ndarray:
        """RoPE inverse frequencies `[head_dim // 2]` float32, computed as transformers does (float32 pow)."""
        base = self.rope_local_base_freq if local else self.rope_theta
        exps = np.arange(0, self.head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(self.head_dim)
        inv = np.float32(1.0) / np.power(np.float32(base), exps, dtype=np.float32)
        if not local and self.rope_scaling_factor != 1.0:
            inv = inv / np.float32(self.rope_scaling_factor)
        return inv.astype(np.float32)


def _text_section(raw: dict, where: str) -> tuple[dict, int | None]:
    """(the text-model fields, image_token_id) of a config.json object."""
    model_type = raw.get("model_type")
    if model_type == "gemma3":
        text = raw.get("text_config")
        if text is None:
            text = {}
        if not isinstance(text, dict):
            raise GemmaConfigError(f"{where}: text_config must be an object")
        image_token = raw.get("image_token_index", raw.get("image_token_id", 262_144))
        return text, int(image_token) if image_token is not None else None
    if model_type == "gemma3_text":
        return raw, None
    raise GemmaConfigError(
        f"{where}: model_type is {model_type!r}; expected a Gemma-3 config ('gemma3' or 'gemma3_text')"
    )


def _rope_factor(scaling: object, where: str) -> float:
    if scaling is None:
        return 1.0
    if not isinstance(scaling, dict):
        raise GemmaConfigError(f"{where}: rope_scaling must be an object or null")
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "default":
        return 1.0
    if kind != "linear":
        raise GemmaConfigError(f"{where}: rope_scaling.rope_type {kind!r} is not supported (only 'linear' or 'default')")
    return float(scaling["factor"])


def _layer_types(text: dict, n: int, where: str) -> tuple[bool, ...]:
    types = text.get("layer_types")
    if types is None:
        pattern = int(text.get("sliding_window_pattern", _TEXT_DEFAULTS["sliding_window_pattern"]))
        return tuple(bool((i + 1) % pattern) for i in range(n))
    if not isinstance(types, list) or len(types) != n or any(t not in _LAYER_TYPES for t in types):
        raise GemmaConfigError(f"{where}: layer_types must list {n} entries of {_LAYER_TYPES}")
    return tuple(t == "sliding_attention" for t in types)


def config_from_dict(raw: dict, where: str = "config.json") -> Gemma3TextConfig:
    """Parse a config.json object (multimodal or text-only); `where` names it in errors."""
    if not isinstance(raw, dict):
        raise GemmaConfigError(f"{where}: expected a JSON object")
    text, image_token = _text_section(raw, where)
    get = {**_TEXT_DEFAULTS, **{k: v for k, v in text.items() if k in _TEXT_DEFAULTS}}
    unsupported = {
        "hidden_activation": ("gelu_pytorch_tanh", get["hidden_activation"]),
        "attention_bias": (False, bool(get["attention_bias"])),
        "attn_logit_softcapping": (None, get["attn_logit_softcapping"]),
        "use_bidirectional_attention": (False, bool(get["use_bidirectional_attention"])),
    }
    for field, (want, got) in unsupported.items():
        if got != want:
            raise GemmaConfigError(f"{where}: {field} = {got!r} is not supported (the Gemma-3 text tower uses {want!r})")
    try:
        n = int(get["num_hidden_layers"])
        heads, kv = int(get["num_attention_heads"]), int(get["num_key_value_heads"])
        if heads % kv:
            raise GemmaConfigError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        vocab = int(get["vocab_size"])
        return Gemma3TextConfig(
            vocab_size=vocab,
            hidden_size=int(get["hidden_size"]),
            intermediate_size=int(get["intermediate_size"]),
            num_layers=n,
            num_heads=heads,
            num_kv_heads=kv,
            head_dim=int(get["head_dim"]),
            rms_norm_eps=float(get["rms_norm_eps"]),
            rope_theta=float(get["rope_theta"]),
            rope_local_base_freq=float(get["rope_local_base_freq"]),
            rope_scaling_factor=_rope_factor(get["rope_scaling"], where),
            query_pre_attn_scalar=float(get["query_pre_attn_scalar"]),
            sliding_window=int(get["sliding_window"]),
            sliding=_layer_types(text, n, where),
            image_token_id=image_token if image_token is not None and image_token >= vocab else None,
        )
    except (TypeError, ValueError, KeyError) as e:
        if isinstance(e, GemmaConfigError):
            raise
        raise GemmaConfigError(f"{where}: invalid Gemma-3 text config ({e})") from None


def read_config(directory: str) -> Gemma3TextConfig:
    """The text config of the Hugging Face directory `directory` (its `config.json`)."""
    path = os.path.join(directory, "config.json")
    if not os.path.isdir(directory):
        raise GemmaConfigError(f"{directory}: not a directory (expected a Hugging Face Gemma-3 directory)")
    if not os.path.isfile(path):
        raise GemmaConfigError(f"{path}: missing; a Hugging Face Gemma-3 directory has a config.json")
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise GemmaConfigError(f"{path}: unreadable ({e})") from None
    return config_from_dict(raw, path)
