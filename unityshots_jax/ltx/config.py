"""Typed configuration of the LTX-2 / LTX-2.3 audio-video transformer.

The architecture is read from the checkpoint header (`metadata["config"]["transformer"]`), exactly the keys
ltx-core 1.0.0's `LTXModelConfigurator` reads, with the same defaults. Execution choices (attention kernel,
remat, compute dtype) are separate (`ExecutionConfig`): they never change what the model computes beyond
floating-point rounding.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

MODEL_TYPES = ("audio_video", "video_only", "audio_only")
# ExecutionConfig.attention: "auto" and the kernels of ltx/attention_kernels.py
ATTENTION_CHOICES = ("auto", "dense", "chunked", "flash", "xla", "cudnn", "splash")
ROPE_TYPES = ("split", "interleaved")

# Values ltx-core 1.0.0 checks and refuses to build otherwise (model_configurator.py).
_CHECKED_CONSTANTS: dict[str, Any] = {
    "dropout": 0.0,
    "attention_bias": True,
    "num_vector_embeds": None,
    "activation_fn": "gelu-approximate",
    "num_embeds_ada_norm": 1000,
    "use_linear_projection": False,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "double_self_attention": False,
    "upcast_attention": False,
    "standardization_norm": "rms_norm",
    "norm_elementwise_affine": False,
    "qk_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "use_middle_indices_grid": True,
}
_CHECKED_AV_CONSTANTS: dict[str, Any] = {
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "av_cross_ada_norm": True,
}


# The `transformer` section of the LTX-2.3 22B checkpoint header (`metadata["config"]["transformer"]`; third-party
# extraction, architecture reference Appendix C). The one copy in the tree: configs/ltx23_22b.py, the parity
# harness's tiny configs and the planning tools read it from here. `audio_in_channels` is absent (default 128).
LTX23_22B_TRANSFORMER: dict = {
    "_class_name": "AVTransformer3DModel",
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 128,
    "attention_type": "default",
    "caption_channels": 3840,
    "cross_attention_dim": 4096,
    "double_self_attention": False,
    "dropout": 0.0,
    "in_channels": 128,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "num_attention_heads": 32,
    "num_embeds_ada_norm": 1000,
    "num_layers": 48,
    "num_vector_embeds": None,
    "only_cross_attention": False,
    "cross_attention_norm": True,
    "out_channels": 128,
    "upcast_attention": False,
    "use_linear_projection": False,
    "qk_norm": "rms_norm",
    "standardization_norm": "rms_norm",
    "positional_embedding_type": "rope",
    "positional_embedding_theta": 10000.0,
    "positional_embedding_max_pos": [20, 2048, 2048],
    "timestep_scale_multiplier": 1000,
    "av_ca_timestep_scale_multiplier": 1000.0,
    "causal_temporal_positioning": True,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "use_audio_video_cross_attention": True,
    "share_ff": False,
    "audio_out_channels": 128,
    "audio_cross_attention_dim": 2048,
    "audio_positional_embedding_max_pos": [20],
    "av_cross_ada_norm": True,
    "use_embeddings_connector": True,
    "connector_attention_head_dim": 128,
    "connector_num_attention_heads": 32,
    "connector_num_layers": 8,
    "connector_positional_embedding_max_pos": [4096],
    "connector_num_learnable_registers": 128,
    "connector_norm_output": True,
    "use_middle_indices_grid": True,
    "apply_gated_attention": True,
    "connector_apply_gated_attention": True,
    "caption_projection_first_linear": False,
    "caption_projection_second_linear": False,
    "caption_proj_input_norm": False,
    "connector_learnable_registers_std": 1,
    "caption_proj_before_connector": True,
    "audio_connector_attention_head_dim": 64,
    "audio_connector_num_attention_heads": 32,
    "cross_attention_adaln": True,
    "text_encoder_norm_type": "per_token_rms",
    "rope_type": "split",
    "frequencies_precision": "float64",
}
FREQUENCY_PRECISIONS = ("float64", "float32")


class ConfigError(ValueError):
    """A checkpoint configuration that cannot describe an LTX transformer; the message names the field."""


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """One stream (video or audio) of the transformer.

    `context_dim` is the width of the text context the stream receives: the stream width when the caption
    projection lives in the text encoder (LTX-2.3), `caption_channels` when it lives in the transformer (LTX-2).
    """

    heads: int
    head_dim: int
    in_channels: int
    out_channels: int
    context_dim: int
    max_pos: tuple[int, ...]

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim


@dataclasses.dataclass(frozen=True)
class LTXConfig:
    """Architecture of `LTXModel` (ltx-core 1.0.0), as the checkpoint describes it."""

    model_type: Literal["audio_video", "video_only", "audio_only"]
    num_layers: int
    video: StreamConfig | None
    audio: StreamConfig | None
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_type: Literal["split", "interleaved"] = "split"
    rope_double_precision: bool = True
    timestep_scale_multiplier: float = 1000.0
    av_ca_timestep_scale_multiplier: float = 1.0
    gated_attention: bool = True
    cross_attention_adaln: bool = True
    # None: the caption projection lives in the text encoder (LTX-2.3); an int: a 2-layer projection from
    # `caption_channels` inside the transformer (LTX-2 19B).
    caption_channels: int | None = None
    # Behaviour switch for ltx-core HEAD (v1.2.0): A<->V scale/shift AdaLN from the stream's own per-token
    # timesteps instead of the other stream's sigma. False reproduces 1.0.0 (the parity target).
    av_adaln_from_own_timesteps: bool = False

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ConfigError(f"model_type: {self.model_type!r} is not one of {MODEL_TYPES}")
        if self.rope_type not in ROPE_TYPES:
            raise ConfigError(f"rope_type: {self.rope_type!r} is not one of {ROPE_TYPES}")
        if self.num_layers < 1:
            raise ConfigError(f"num_layers: must be >= 1, got {self.num_layers}")
        if self.has_video != (self.video is not None) or self.has_audio != (self.audio is not None):
            raise ConfigError(f"model_type {self.model_type!r} does not match the streams given")
        for name, stream in (("video", self.video), ("audio", self.audio)):
            if stream is None:
                continue
            for field in ("heads", "head_dim", "in_channels", "out_channels", "context_dim"):
                if getattr(stream, field) < 1:
                    raise ConfigError(f"{name}.{field}: must be >= 1, got {getattr(stream, field)}")
            if stream.head_dim % 2:  # both RoPE types rotate pairs of head channels
                raise ConfigError(f"{name} attention_head_dim: RoPE needs an even head dim, got {stream.head_dim}")
            if self.caption_channels is None and stream.context_dim != stream.dim:
                raise ConfigError(
                    f"{'cross_attention_dim' if name == 'video' else 'audio_cross_attention_dim'}: must equal "
                    f"heads*head_dim = {stream.dim} when the caption projection is outside the transformer, "
                    f"got {stream.context_dim}"
                )
        if self.has_video and self.has_audio:
            if self.rope_type == "split" and self.video.heads != self.audio.heads:
                raise ConfigError(
                    "num_attention_heads / audio_num_attention_heads: split RoPE in the audio<->video attention "
                    f"needs equal head counts, got {self.video.heads} and {self.audio.heads}"
                )
            if self.rope_type == "split" and self.audio.dim % (2 * self.video.heads):
                raise ConfigError("audio_cross_attention_dim: must split evenly over the video heads")

    @property
    def has_video(self) -> bool:
        return self.model_type in ("audio_video", "video_only")

    @property
    def has_audio(self) -> bool:
        return self.model_type in ("audio_video", "audio_only")

    @property
    def adaln_coefficient(self) -> int:
        """Rows of each block's modulation table: 6, plus 3 for the text cross-attention AdaLN."""
        return 9 if self.cross_attention_adaln else 6

    @property
    def cross_pe_max_pos(self) -> int:
        return max(self.video.max_pos[0], self.audio.max_pos[0])

    # ----------------------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoint_config(cls, transformer: dict, model_type: str = "audio_video") -> "LTXConfig":
        """Build from the checkpoint's `config["transformer"]` dict with ltx-core 1.0.0's defaults.

        Raises `ConfigError` naming the offending key for values ltx-core refuses, or for inconsistent sizes.
        """
        if not isinstance(transformer, dict):
            raise ConfigError(f"config['transformer']: expected an object, got {type(transformer).__name__}")
        checks = dict(_CHECKED_CONSTANTS)
        if model_type == "audio_video":
            checks.update(_CHECKED_AV_CONSTANTS)
        for key, expected in checks.items():
            if key in transformer and transformer[key] != expected:
                raise ConfigError(f"config.transformer.{key}: ltx-core requires {expected!r}, got {transformer[key]!r}")

        def get(key: str, default: Any) -> Any:
            return transformer.get(key, default)

        def integer(key: str, default: int) -> int:
            value = get(key, default)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"config.transformer.{key}: expected an integer, got {value!r}")
            return value

        caption_inside = not get("caption_proj_before_connector", False)
        caption_channels = integer("caption_channels", 3840) if caption_inside else None
        video = audio = None
        if model_type in ("audio_video", "video_only"):
            heads, head_dim = integer("num_attention_heads", 32), integer("attention_head_dim", 128)
            video = StreamConfig(
                heads=heads,
                head_dim=head_dim,
                in_channels=integer("in_channels", 128),
                out_channels=integer("out_channels", 128),
                context_dim=caption_channels if caption_inside else integer("cross_attention_dim", 4096),
                max_pos=tuple(int(v) for v in get("positional_embedding_max_pos", [20, 2048, 2048])),
            )
            if caption_inside and integer("cross_attention_dim", 4096) != video.dim:
                raise ConfigError(
                    f"config.transformer.cross_attention_dim: must equal heads*head_dim = {video.dim}, "
                    f"got {get('cross_attention_dim', 4096)}"
                )
            if len(video.max_pos) != 3:
                raise ConfigError("config.transformer.positional_embedding_max_pos: expected 3 values (t, h, w)")
        if model_type in ("audio_video", "audio_only"):
            heads, head_dim = integer("audio_num_attention_heads", 32), integer("audio_attention_head_dim", 64)
            audio = StreamConfig(
                heads=heads,
                head_dim=head_dim,
                in_channels=integer("audio_in_channels", 128),
                out_channels=integer("audio_out_channels", 128),
                context_dim=caption_channels if caption_inside else integer("audio_cross_attention_dim", 2048),
                max_pos=tuple(int(v) for v in get("audio_positional_embedding_max_pos", [20])),
            )
            if len(audio.max_pos) != 1:
                raise ConfigError("config.transformer.audio_positional_embedding_max_pos: expected 1 value")
            cross = integer("audio_cross_attention_dim", 2048)
            if cross != audio.dim:
                raise ConfigError(
                    f"config.transformer.audio_cross_attention_dim: must equal audio heads*head_dim = {audio.dim}, "
                    f"got {cross}"
                )
        rope_type = get("rope_type", "interleaved")
        if rope_type not in ROPE_TYPES:
            raise ConfigError(f"config.transformer.rope_type: expected one of {ROPE_TYPES}, got {rope_type!r}")
        if get("frequencies_precision", "float32") not in FREQUENCY_PRECISIONS:
            raise ConfigError(f"config.transformer.frequencies_precision: expected one of {FREQUENCY_PRECISIONS}, "
                              f"got {get('frequencies_precision', None)!r}")
        return cls(
            model_type=model_type,
            num_layers=integer("num_layers", 48),
            video=video,
            audio=audio,
            norm_eps=float(get("norm_eps", 1e-6)),
            rope_theta=float(get("positional_embedding_theta", 10000.0)),
            rope_type=rope_type,
            rope_double_precision=get("frequencies_precision", False) == "float64",
            timestep_scale_multiplier=float(get("timestep_scale_multiplier", 1000)),
            av_ca_timestep_scale_multiplier=float(get("av_ca_timestep_scale_multiplier", 1)),
            gated_attention=bool(get("apply_gated_attention", False)),
            cross_attention_adaln=bool(get("cross_attention_adaln", False)),
            caption_channels=caption_channels,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LTXConfig":
        raw = json.loads(text)
        for name in ("video", "audio"):
            if raw.get(name) is not None:
                stream = dict(raw[name])
                stream["max_pos"] = tuple(stream["max_pos"])
                raw[name] = StreamConfig(**stream)
        return cls(**raw)


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
    """How the transformer runs; none of these change the math.

    attention: "auto" (the default: splash on TPU, cudnn on GPU for bfloat16/float16 and flash for float32, flash
    on CPU; resolved once by `attention_kernels.resolve_attention`, which logs the choice), "splash" (Pallas TPU
    splash attention, masks as segment ids; interpret mode off a TPU, for tests only), "flash" (queries in chunks
    of `attention_chunk`, online softmax over key tiles, a backward that recomputes instead of storing
    probabilities; the fastest on CPU), "chunked" (queries in chunks, plain softmax), "dense" (softmax(QKᵀ)V in
    XLA), "xla" / "cudnn" (`jax.nn.dot_product_attention` with that implementation; cudnn needs a GPU and bf16).
    Under an active mesh every kernel runs per shard with K/V gathered over the context axis
    (ltx/context_parallel.py).
    remat: "none", "full" (recompute each block), "dots" (save matmul outputs without batch dims).
    dtype: activation dtype ("float32" or "bfloat16"); norms, softmax and modulation tables stay in float32 math.
    """

    attention: Literal["auto", "splash", "flash", "chunked", "dense", "xla", "cudnn"] = "auto"
    attention_chunk: int = 128
    remat: Literal["none", "full", "dots"] = "none"
    dtype: Literal["float32", "bfloat16"] = "float32"
