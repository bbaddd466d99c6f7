"""LTX-2.3 22B transformer: the checkpoint's `transformer` config and how to run it.

The architecture normally comes from the checkpoint header; this file lets planning tools and tests build the
real 22B model abstractly (`jax.eval_shape`) without the 44 GB file. Override from the command line with
`--config.execution.attention=flash` etc. (default "auto": splash on TPU, cuDNN on GPU).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model_type = "audio_video"
    # Values from the LTX-2.3 checkpoint header (ltx23_architecture.md, Appendix C); only keys ltx-core reads.
    c.transformer = dict(
        num_layers=48,
        num_attention_heads=32,
        attention_head_dim=128,
        in_channels=128,
        out_channels=128,
        cross_attention_dim=4096,
        audio_num_attention_heads=32,
        audio_attention_head_dim=64,
        audio_out_channels=128,
        audio_cross_attention_dim=2048,
        caption_channels=3840,
        caption_proj_before_connector=True,
        apply_gated_attention=True,
        cross_attention_adaln=True,
        rope_type="split",
        frequencies_precision="float64",
        positional_embedding_theta=10000.0,
        positional_embedding_max_pos=[20, 2048, 2048],
        audio_positional_embedding_max_pos=[20],
        timestep_scale_multiplier=1000,
        av_ca_timestep_scale_multiplier=1000.0,
        norm_eps=1e-6,
        use_middle_indices_grid=True,
    )
    c.execution = ml_collections.ConfigDict(dict(attention="auto", attention_chunk=256, remat="dots", dtype="bfloat16"))
    c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, context=1, tensor=1))
    return c
