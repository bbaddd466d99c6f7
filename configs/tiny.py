"""A tiny LTX-2.3-shaped transformer (2 layers, video 2×16, audio 2×8) for CPU runs, tests and notebooks."""

import ml_collections

from configs import ltx23_22b


def get_config() -> ml_collections.ConfigDict:
    c = ltx23_22b.get_config()
    c.transformer.update(
        num_layers=2,
        num_attention_heads=2,
        attention_head_dim=16,
        cross_attention_dim=32,
        audio_num_attention_heads=2,
        audio_attention_head_dim=8,
        audio_cross_attention_dim=16,
        in_channels=16,
        out_channels=16,
        audio_in_channels=16,
        audio_out_channels=16,
    )
    c.execution.update(attention="auto", remat="none", dtype="float32")
    c.mesh.update(fsdp=1)
    return c
