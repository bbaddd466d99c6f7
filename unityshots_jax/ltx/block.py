"""One `BasicAVTransformerBlock` of LTX-2: video and audio streams, text cross-attention, A↔V attention, FF."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx, struct

from unityshots_jax.ltx.attention import Attention
from unityshots_jax.ltx.attention_kernels import AttentionFn
from unityshots_jax.ltx.attention_mask import AttentionMask
from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.ltx.layers import FeedForward, rms_norm, table
from unityshots_jax.ltx.rope import RopeTables
from unityshots_jax.sharding import constrain


@struct.dataclass
class StreamContext:
    """Per-forward conditioning of one stream, shared by every block (not carried, not scanned).

    timestep_proj:  `[batch, tokens or 1, K·dim]` AdaLN projection of the per-token timesteps.
    prompt_proj:    `[batch, 1, 2·dim]` prompt AdaLN projection of σ (cross_attention_adaln), else None.
    context:        `[batch, text_tokens, dim]` text context (after the caption projection, if any).
    context_mask:   the text padding mask (keys `[batch, text_tokens]`), or None.
    self_mask:      the self-attention mask (this stream's padding keys, and ltx-core's soft per-query strengths if
                    given), or None.
    key_mask:       the mask hiding this stream's padding tokens as keys of the other stream's A↔V attention, or None.
    rope:           RoPE tables for self-attention.
    cross_rope:     RoPE tables (time only) for A↔V attention, or None without the other stream.
    cross_scale_shift: `[batch, 1 or tokens, 4·dim]` A↔V scale/shift projection, or None.
    cross_gate:     `[batch, 1, dim]` A↔V output-gate projection, or None.
    """

    timestep_proj: jnp.ndarray
    prompt_proj: jnp.ndarray | None
    context: jnp.ndarray
    context_mask: AttentionMask | None
    self_mask: AttentionMask | None
    rope: RopeTables
    key_mask: AttentionMask | None = None
    cross_rope: RopeTables | None = None
    cross_scale_shift: jnp.ndarray | None = None
    cross_gate: jnp.ndarray | None = None


@struct.dataclass
class BlockSkips:
    """One block's perturbation switches, each `[batch]` (1.0 = perturbed)."""

    video_self: jnp.ndarray
    audio_self: jnp.ndarray
    a2v: jnp.ndarray
    v2a: jnp.ndarray


def modulation(tbl: jnp.ndarray, proj: jnp.ndarray, start: int, stop: int) -> list[jnp.ndarray]:
    """Rows start..stop of `tbl` `[rows, dim]` plus the matching chunks of `proj` `[batch, t, rows·dim]`.

    Returns stop−start arrays `[batch, t, dim]`.
    """
    rows, dim = tbl.shape
    chunks = proj.reshape(proj.shape[0], proj.shape[1], rows, dim)
    return [tbl[j].astype(proj.dtype)[None, None] + chunks[:, :, j] for j in range(start, stop)]


class AVBlock(nnx.Module):
    """Parameters mirror ltx-core's block: attn1/attn2/ff (video), audio_attn1/audio_attn2/audio_ff,
    audio_to_video_attn/video_to_audio_attn, and the modulation tables."""

    def __init__(self, cfg: LTXConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        v, a, k, eps, gated = cfg.video, cfg.audio, cfg.adaln_coefficient, cfg.norm_eps, cfg.gated_attention
        if v is not None:
            self.attn1 = Attention(v.dim, v.dim, v.heads, v.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.attn2 = Attention(v.dim, v.dim, v.heads, v.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.ff = FeedForward(v.dim, rngs)
            self.scale_shift_table = table(rngs, k, v.dim)
            if cfg.cross_attention_adaln:
                self.prompt_scale_shift_table = table(rngs, 2, v.dim)
        if a is not None:
            self.audio_attn1 = Attention(a.dim, a.dim, a.heads, a.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.audio_attn2 = Attention(a.dim, a.dim, a.heads, a.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.audio_ff = FeedForward(a.dim, rngs)
            self.audio_scale_shift_table = table(rngs, k, a.dim)
            if cfg.cross_attention_adaln:
                self.audio_prompt_scale_shift_table = table(rngs, 2, a.dim)
        if v is not None and a is not None:
            self.audio_to_video_attn = Attention(v.dim, a.dim, a.heads, a.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.video_to_audio_attn = Attention(a.dim, v.dim, a.heads, a.head_dim, gated=gated, eps=eps, rngs=rngs)
            self.scale_shift_table_a2v_ca_video = table(rngs, 5, v.dim)
            self.scale_shift_table_a2v_ca_audio = table(rngs, 5, a.dim)

    def _self_and_text(
        self, x: jnp.ndarray, ctx: StreamContext, skip: jnp.ndarray, kernel: AttentionFn, audio: bool
    ) -> jnp.ndarray:
        """Self-attention and text cross-attention of one stream; x `[batch, tokens, dim]`."""
        eps = self.cfg.norm_eps
        attn1 = self.audio_attn1 if audio else self.attn1
        attn2 = self.audio_attn2 if audio else self.attn2
        sst = (self.audio_scale_shift_table if audio else self.scale_shift_table)[...]
        shift, scale, gate = modulation(sst, ctx.timestep_proj, 0, 3)
        h = rms_norm(x, eps) * (1 + scale) + shift
        x = x + attn1(h, kernel, mask=ctx.self_mask, q_rope=ctx.rope, skip=skip) * gate
        if self.cfg.cross_attention_adaln:
            shift_q, scale_q, gate_q = modulation(sst, ctx.timestep_proj, 6, 9)
            psst = (self.audio_prompt_scale_shift_table if audio else self.prompt_scale_shift_table)[...]
            shift_kv, scale_kv = modulation(psst, ctx.prompt_proj, 0, 2)
            h = rms_norm(x, eps) * (1 + scale_q) + shift_q
            text = ctx.context * (1 + scale_kv) + shift_kv
            return x + attn2(h, kernel, context=text, mask=ctx.context_mask) * gate_q
        return x + attn2(rms_norm(x, eps), kernel, context=ctx.context, mask=ctx.context_mask)

    def _feed_forward(self, x: jnp.ndarray, ctx: StreamContext, audio: bool) -> jnp.ndarray:
        sst = (self.audio_scale_shift_table if audio else self.scale_shift_table)[...]
        shift, scale, gate = modulation(sst, ctx.timestep_proj, 3, 6)
        ff = self.audio_ff if audio else self.ff
        return x + ff(rms_norm(x, self.cfg.norm_eps) * (1 + scale) + shift) * gate

    def _av_values(self, tbl: jnp.ndarray, ctx: StreamContext, first: int) -> tuple[jnp.ndarray, ...]:
        """(scale, shift) from rows first, first+1 of the A↔V table and this stream's gate (row 4)."""
        scale, shift = modulation(tbl[:4], ctx.cross_scale_shift, first, first + 2)
        (gate,) = modulation(tbl[4:], ctx.cross_gate, 0, 1)
        return scale, shift, gate

    def __call__(
        self,
        vx: jnp.ndarray | None,
        ax: jnp.ndarray | None,
        video: StreamContext | None,
        audio: StreamContext | None,
        skips: BlockSkips,
        kernel: AttentionFn,
    ) -> tuple[jnp.ndarray | None, jnp.ndarray | None]:
        """vx `[batch, video_tokens, video_dim]`, ax `[batch, audio_tokens, audio_dim]` (either may be None)."""
        if vx is not None:
            vx = self._self_and_text(vx, video, skips.video_self, kernel, audio=False)
        if ax is not None:
            ax = self._self_and_text(ax, audio, skips.audio_self, kernel, audio=True)
        if vx is not None and ax is not None:
            eps = self.cfg.norm_eps
            vn, an = rms_norm(vx, eps), rms_norm(ax, eps)
            tv = self.scale_shift_table_a2v_ca_video[...]
            ta = self.scale_shift_table_a2v_ca_audio[...]
            # audio → video: video queries, audio keys/values
            scale_v, shift_v, gate_v = self._av_values(tv, video, 0)
            scale_a, shift_a, _ = self._av_values(ta, audio, 0)
            keep = (1.0 - skips.a2v).astype(vx.dtype)[:, None, None]
            a2v = self.audio_to_video_attn(
                vn * (1 + scale_v) + shift_v,
                kernel,
                context=an * (1 + scale_a) + shift_a,
                mask=audio.key_mask,
                q_rope=video.cross_rope,
                k_rope=audio.cross_rope,
            )
            # video → audio: audio queries, video keys/values
            scale_a, shift_a, gate_a = self._av_values(ta, audio, 2)
            scale_v, shift_v, _ = self._av_values(tv, video, 2)
            keep_a = (1.0 - skips.v2a).astype(ax.dtype)[:, None, None]
            v2a = self.video_to_audio_attn(
                an * (1 + scale_a) + shift_a,
                kernel,
                context=vn * (1 + scale_v) + shift_v,
                mask=video.key_mask,
                q_rope=audio.cross_rope,
                k_rope=video.cross_rope,
            )
            vx = vx + a2v * gate_v * keep
            ax = ax + v2a * gate_a * keep_a
        if vx is not None:
            vx = constrain(self._feed_forward(vx, video, audio=False), ("activation_batch", "activation_length", "activation_embed"))
        if ax is not None:
            ax = constrain(self._feed_forward(ax, audio, audio=True), ("activation_batch", None, "activation_embed"))
        return vx, ax
