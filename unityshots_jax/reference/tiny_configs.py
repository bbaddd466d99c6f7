"""Transformer config dicts for the parity harness (no torch import).

`LTX23_TRANSFORMER_CONFIG` is the `transformer` sub-dict of the LTX-2.3 22B checkpoint header
(`metadata["config"]["transformer"]`, third-party extraction, architecture doc Appendix C).
`tiny_transformer_config` / `tiny_19b_config` shrink it to CPU-sized models that keep every code path of
the 2.3 (resp. 19B) layout. Each dict is what `json.loads(metadata["config"])["transformer"]` would hold.
"""

from __future__ import annotations

import copy

from unityshots_jax.ltx.config import LTX23_22B_TRANSFORMER, LTXConfig

LTX23_TRANSFORMER_CONFIG: dict = LTX23_22B_TRANSFORMER  # the one copy: unityshots_jax/ltx/config.py
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

def validate_transformer_config(config: dict, *, audio_video: bool = True) -> None:
    """Check the structural invariants a (tiny) LTX transformer config must satisfy: the library's own checks
    (`LTXConfig.from_checkpoint_config`: positive sizes, even head dims, context widths equal to the stream widths,
    equal head counts for split RoPE with both streams, known `rope_type` / `frequencies_precision`).

    Raises ValueError (`ConfigError`) naming the offending field.
    """
    LTXConfig.from_checkpoint_config(config, "audio_video" if audio_video else "video_only")


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
