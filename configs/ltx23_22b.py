"""LTX-2.3 22B transformer: the checkpoint's `transformer` config and how to run it.

The architecture normally comes from the checkpoint header; this file lets planning tools and tests build the
real 22B model abstractly (`jax.eval_shape`) without the 44 GB file. Override from the command line with
`--config.execution.attention=flash` etc. (default "auto": splash on TPU, cuDNN on GPU).
"""

import copy

import ml_collections

from unityshots_jax.ltx.config import LTX23_22B_TRANSFORMER

READ_KEYS = (
    "num_layers", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "cross_attention_dim",
    "audio_num_attention_heads", "audio_attention_head_dim", "audio_out_channels", "audio_cross_attention_dim",
    "caption_channels", "caption_proj_before_connector", "apply_gated_attention", "cross_attention_adaln",
    "rope_type", "frequencies_precision", "positional_embedding_theta", "positional_embedding_max_pos",
    "audio_positional_embedding_max_pos", "timestep_scale_multiplier", "av_ca_timestep_scale_multiplier",
    "norm_eps", "use_middle_indices_grid",
)  # fmt: skip


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_type = "audio_video"
    # The keys ltx-core reads, from the checkpoint header (unityshots_jax.ltx.config.LTX23_22B_TRANSFORMER).
    c.transformer = {key: copy.deepcopy(LTX23_22B_TRANSFORMER[key]) for key in READ_KEYS}
    c.execution = ml_collections.ConfigDict(dict(attention="auto", attention_chunk=256, remat="dots", dtype="bfloat16"))
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, context=1, tensor=1))
    return c
