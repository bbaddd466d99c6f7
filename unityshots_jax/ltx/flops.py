"""Model FLOPs of the LTX transformer (matmuls only, 2·m·n·k each), the count behind every MFU we report.

XLA's cost analysis counts a `lax.scan` body once, not once per layer, and does not see inside fused
attention custom calls (cuDNN), so MFU uses this analytic count. Backward is counted as 2× forward.
"""

from __future__ import annotations

from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.ltx.timestep import TIMESTEP_CHANNELS


def _attention(tq: int, tk: int, dq: int, dkv: int, inner: int, heads: int, gated: bool) -> int:
    proj = 2 * tq * dq * inner + 2 * 2 * tk * dkv * inner + 2 * tq * inner * dq
    core = 2 * 2 * tq * tk * inner
    return proj + core + (2 * tq * dq * heads if gated else 0)


def _adaln(n: int, dim: int, coefficient: int) -> int:
    return 2 * n * (TIMESTEP_CHANNELS * dim + dim * dim + dim * coefficient * dim)


def forward_flops(cfg: LTXConfig, video_tokens: int, audio_tokens: int, text_tokens: int, batch: int = 1) -> int:
    """Matmul FLOPs of one forward pass with per-token timesteps (as the reference computes them)."""
    total = 0
    per_block = 0
    streams = []
    if cfg.video is not None and video_tokens:
        streams.append((cfg.video, video_tokens))
    if cfg.audio is not None and audio_tokens:
        streams.append((cfg.audio, audio_tokens))
    for s, t in streams:
        ctx_dim = s.dim
        total += 2 * t * s.in_channels * s.dim + 2 * t * s.dim * s.out_channels
        total += _adaln(t, s.dim, cfg.adaln_coefficient)
        if cfg.cross_attention_adaln:
            total += _adaln(1, s.dim, 2)
        if cfg.caption_channels is not None:
            total += 2 * text_tokens * (cfg.caption_channels * s.dim + s.dim * s.dim)
        per_block += _attention(t, t, s.dim, s.dim, s.dim, s.heads, cfg.gated_attention)
        per_block += _attention(t, text_tokens, s.dim, ctx_dim, s.dim, s.heads, cfg.gated_attention)
        per_block += 2 * 2 * t * s.dim * 4 * s.dim
    if len(streams) == 2:
        (v, tv), (a, ta) = streams
        per_block += _attention(tv, ta, v.dim, a.dim, a.dim, a.heads, cfg.gated_attention)
        per_block += _attention(ta, tv, a.dim, v.dim, a.dim, a.heads, cfg.gated_attention)
        total += _adaln(1, v.dim, 4) + _adaln(1, a.dim, 4) + _adaln(1, v.dim, 1) + _adaln(1, a.dim, 1)
    return batch * (total + cfg.num_layers * per_block)


def train_flops(cfg: LTXConfig, video_tokens: int, audio_tokens: int, text_tokens: int, batch: int = 1) -> int:
    """Forward + backward: 3× the forward matmul FLOPs."""
    return 3 * forward_flops(cfg, video_tokens, audio_tokens, text_tokens, batch)
