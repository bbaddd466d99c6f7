"""Transformer config dicts for the parity harness (no torch import).

`LTX23_TRANSFORMER_CONFIG` is the `transformer` sub-dict of the LTX-2.3 22B checkpoint header
(`metadata["config"]["transformer"]`, third-party extraction, architecture doc Appendix C).
`tiny_transformer_config` / `tiny_19b_config` shrink it to CPU-sized models that keep every code path of
the 2.3 (resp. 19B) layout. Each dict is what `json.loads(metadata["config"])["transformer"]` would hold.
"""

from __future__ import annotations

import copy

LTX23_TRANSFORMER_CONFIG: dict = {
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
"""Full 22B `transformer` config. Note: `audio_in_channels` is absent (the configurator defaults it to 128)."""

# Keys that only the 2.3 layout writes; `tiny_19b_config(explicit_keys=False)` drops them so the
# ltx-core 1.0.0 configurator defaults (caption projection inside, no gating, no text-CA AdaLN) apply.
_LTX23_ONLY_KEYS = (
    "apply_gated_attention",
    "cross_attention_adaln",
    "caption_proj_before_connector",
    "caption_projection_first_linear",
    "caption_projection_second_linear",
    "caption_proj_input_norm",
    "connector_apply_gated_attention",
    "audio_connector_attention_head_dim",
    "audio_connector_num_attention_heads",
    "text_encoder_norm_type",
)

_ROPE_TYPES = ("split", "interleaved")
_FREQ_PRECISIONS = ("float64", "float32")


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def validate_transformer_config(config: dict, *, audio_video: bool = True) -> None:
    """Check the structural invariants a (tiny) LTX transformer config must satisfy.

    Raises ValueError naming the offending field. Checked: positive sizes; even head dims (RoPE halves
    each head); `cross_attention_dim == num_attention_heads * attention_head_dim` and the audio
    equivalent (ltx-core reshapes the context to the stream width); split RoPE with both streams needs
    `num_attention_heads == audio_num_attention_heads` (the cross-modal RoPE has the audio inner dim but
    is split over each stream's own heads); known `rope_type` / `frequencies_precision` values.
    """
    for key in ("num_layers", "num_attention_heads", "attention_head_dim", "audio_num_attention_heads",
                "audio_attention_head_dim", "in_channels", "out_channels", "audio_out_channels"):
        _require_positive(key, config[key])
    _require_positive("audio_in_channels", config.get("audio_in_channels", 128))
    for key in ("attention_head_dim", "audio_attention_head_dim"):
        if config[key] % 2:
            raise ValueError(f"{key} must be even for RoPE, got {config[key]}")
    video_dim = config["num_attention_heads"] * config["attention_head_dim"]
    audio_dim = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]
    if config["cross_attention_dim"] != video_dim:
        raise ValueError(f"cross_attention_dim must equal num_attention_heads*attention_head_dim={video_dim}, "
                         f"got {config['cross_attention_dim']}")
    if config["audio_cross_attention_dim"] != audio_dim:
        raise ValueError(f"audio_cross_attention_dim must equal audio_num_attention_heads*audio_attention_head_dim="
                         f"{audio_dim}, got {config['audio_cross_attention_dim']}")
    rope_type = config.get("rope_type", "interleaved")
    if rope_type not in _ROPE_TYPES:
        raise ValueError(f"rope_type must be one of {_ROPE_TYPES}, got {rope_type!r}")
    precision = config.get("frequencies_precision", "float32")
    if precision not in _FREQ_PRECISIONS:
        raise ValueError(f"frequencies_precision must be one of {_FREQ_PRECISIONS}, got {precision!r}")
    if audio_video and rope_type == "split" and config["num_attention_heads"] != config["audio_num_attention_heads"]:
        raise ValueError("audio_num_attention_heads must equal num_attention_heads for split RoPE with both streams "
                         f"(got {config['audio_num_attention_heads']} vs {config['num_attention_heads']})")
    if not config.get("caption_proj_before_connector", False):
        _require_positive("caption_channels", config.get("caption_channels", 0))


def _resize(config: dict, *, num_layers: int, heads: int, head_dim: int, audio_heads: int, audio_head_dim: int,
            in_channels: int, audio_channels: int, caption_channels: int) -> None:
    config.update(
        num_layers=num_layers,
        num_attention_heads=heads,
        attention_head_dim=head_dim,
        cross_attention_dim=heads * head_dim,
        audio_num_attention_heads=audio_heads,
        audio_attention_head_dim=audio_head_dim,
        audio_cross_attention_dim=audio_heads * audio_head_dim,
        in_channels=in_channels,
        out_channels=in_channels,
        audio_in_channels=audio_channels,
        audio_out_channels=audio_channels,
        caption_channels=caption_channels,
        # Text connectors (not built by the transformer) are kept consistent with the stream widths.
        connector_num_attention_heads=heads,
        connector_attention_head_dim=head_dim,
        connector_num_layers=2,
        audio_connector_num_attention_heads=audio_heads,
        audio_connector_attention_head_dim=audio_head_dim,
    )


def tiny_transformer_config(
    *,
    num_layers: int = 2,
    heads: int = 2,
    head_dim: int = 16,
    audio_heads: int = 2,
    audio_head_dim: int = 8,
    in_channels: int = 16,
    audio_channels: int = 16,
    rope_type: str = "split",
    caption_proj_before_connector: bool = True,
    cross_attention_adaln: bool = True,
    apply_gated_attention: bool = True,
    caption_channels: int = 24,
    frequencies_precision: str = "float64",
) -> dict:
    """A tiny LTX-2.3-layout `transformer` config (all 22B keys kept, only sizes and switches overridden).

    Video stream width `Dv = heads*head_dim`, audio `Da = audio_heads*audio_head_dim`; token channels
    `in_channels` (video, in = out) and `audio_channels` (audio, in = out; must factor as
    audio latent channels x mel bins). Text contexts fed to the model are `[batch, text_tokens, Dv]` /
    `[batch, text_tokens, Da]` when `caption_proj_before_connector` (2.3), else
    `[batch, text_tokens, caption_channels]` for both streams (19B-style projection inside the transformer).
    Raises ValueError naming the field when an invariant is broken (see `validate_transformer_config`).
    """
    config = copy.deepcopy(LTX23_TRANSFORMER_CONFIG)
    _resize(config, num_layers=num_layers, heads=heads, head_dim=head_dim, audio_heads=audio_heads,
            audio_head_dim=audio_head_dim, in_channels=in_channels, audio_channels=audio_channels,
            caption_channels=caption_channels)
    config.update(
        rope_type=rope_type,
        caption_proj_before_connector=caption_proj_before_connector,
        cross_attention_adaln=cross_attention_adaln,
        apply_gated_attention=apply_gated_attention,
        connector_apply_gated_attention=apply_gated_attention,
        frequencies_precision=frequencies_precision,
    )
    validate_transformer_config(config)
    return config


def tiny_19b_config(
    *,
    num_layers: int = 2,
    heads: int = 2,
    head_dim: int = 16,
    audio_heads: int = 2,
    audio_head_dim: int = 8,
    in_channels: int = 16,
    audio_channels: int = 16,
    caption_channels: int = 24,
    rope_type: str = "interleaved",
    frequencies_precision: str = "float64",
    explicit_keys: bool = False,
) -> dict:
    """A tiny LTX-2 (19B)-layout `transformer` config.

    Layout: caption projection inside the transformer (`caption_projection` /
    `audio_caption_projection`, PixArt MLP `caption_channels -> D -> D`), AdaLN coefficient 6 (no text
    cross-attention AdaLN, no prompt AdaLN), no gated attention, interleaved RoPE. Contexts fed to the
    model are `[batch, text_tokens, caption_channels]` for both streams.

    With `explicit_keys=False` (default) the 2.3-only keys (`apply_gated_attention`, `cross_attention_adaln`,
    `caption_proj_before_connector`, ...) are *absent*, so the ltx-core 1.0.0 configurator defaults
    (all False) apply, as for a checkpoint written before 2.3. With `explicit_keys=True` they are written
    as explicit False values. `rope_type` is always written (configurator default is "interleaved");
    `frequencies_precision` "float32" selects the float32 torch frequency grid.
    """
    config = copy.deepcopy(LTX23_TRANSFORMER_CONFIG)
    _resize(config, num_layers=num_layers, heads=heads, head_dim=head_dim, audio_heads=audio_heads,
            audio_head_dim=audio_head_dim, in_channels=in_channels, audio_channels=audio_channels,
            caption_channels=caption_channels)
    for key in _LTX23_ONLY_KEYS:
        config.pop(key, None)
    if explicit_keys:
        config.update(apply_gated_attention=False, cross_attention_adaln=False, caption_proj_before_connector=False,
                      connector_apply_gated_attention=False)
    config.update(rope_type=rope_type, frequencies_precision=frequencies_precision)
    validate_transformer_config(config)
    return config


def context_dims(config: dict) -> tuple[int, int]:
    """Widths `(video_context_dim, audio_context_dim)` of the text contexts the transformer expects.

    2.3 layout (`caption_proj_before_connector`): `(cross_attention_dim, audio_cross_attention_dim)`;
    19B layout: `(caption_channels, caption_channels)` (projected inside the transformer).
    """
    if config.get("caption_proj_before_connector", False):
        return config["cross_attention_dim"], config["audio_cross_attention_dim"]
    return config["caption_channels"], config["caption_channels"]
