"""`LTXModel` of ltx-core 1.0.0 in Flax NNX: preprocessing, a `lax.scan` over stacked blocks, output heads.

Use `build_model(cfg, rngs)` for a random model, `abstract_model(cfg)` for shapes only, and the pure function
`forward(graphdef, params, video, audio, perturbations, execution)` inside jit / scan / grad.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.attention_kernels import attention_kernel, resolve_attention
from unityshots_jax.ltx.attention_mask import AttentionMask, key_mask
from unityshots_jax.ltx.block import AVBlock, BlockSkips, StreamContext
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig, StreamConfig
from unityshots_jax.ltx.context_parallel import sharded_attention
from unityshots_jax.ltx.inputs import Perturbations, StreamInput
from unityshots_jax.ltx.layers import CaptionProjection, dense, layer_norm, table
from unityshots_jax.ltx.rope import rope_tables
from unityshots_jax.ltx.timestep import AdaLNSingle
from unityshots_jax.sharding import constrain

_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


def _make_blocks(cfg: LTXConfig, rngs: nnx.Rngs) -> AVBlock:
    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=cfg.num_layers, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make(r: nnx.Rngs) -> AVBlock:
        return AVBlock(cfg, r)

    return make(rngs)


class LTXModel(nnx.Module):
    """Audio-video (or single-stream) LTX transformer; parameter names follow ltx-core's state dict."""

    def __init__(self, cfg: LTXConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        k = cfg.adaln_coefficient
        v, a = cfg.video, cfg.audio
        if v is not None:
            self.patchify_proj = dense(rngs, v.in_channels, v.dim, (None, "embed"))
            self.adaln_single = AdaLNSingle(v.dim, k, rngs)
            if cfg.cross_attention_adaln:
                self.prompt_adaln_single = AdaLNSingle(v.dim, 2, rngs)
            if cfg.caption_channels is not None:
                self.caption_projection = CaptionProjection(cfg.caption_channels, v.dim, rngs)
            self.scale_shift_table = table(rngs, 2, v.dim)
            self.proj_out = dense(rngs, v.dim, v.out_channels, ("embed", None))
        if a is not None:
            self.audio_patchify_proj = dense(rngs, a.in_channels, a.dim, (None, "embed"))
            self.audio_adaln_single = AdaLNSingle(a.dim, k, rngs)
            if cfg.cross_attention_adaln:
                self.audio_prompt_adaln_single = AdaLNSingle(a.dim, 2, rngs)
            if cfg.caption_channels is not None:
                self.audio_caption_projection = CaptionProjection(cfg.caption_channels, a.dim, rngs)
            self.audio_scale_shift_table = table(rngs, 2, a.dim)
            self.audio_proj_out = dense(rngs, a.dim, a.out_channels, ("embed", None))
        if v is not None and a is not None:
            self.av_ca_video_scale_shift_adaln_single = AdaLNSingle(v.dim, 4, rngs)
            self.av_ca_audio_scale_shift_adaln_single = AdaLNSingle(a.dim, 4, rngs)
            self.av_ca_a2v_gate_adaln_single = AdaLNSingle(v.dim, 1, rngs)
            self.av_ca_v2a_gate_adaln_single = AdaLNSingle(a.dim, 1, rngs)
        self.blocks = _make_blocks(cfg, rngs)

    # ------------------------------------------------------------------------------------------------ preprocessing
    def _stream_context(
        self, x: jnp.ndarray, inp: StreamInput, other: StreamInput | None, audio: bool
    ) -> tuple[StreamContext, jnp.ndarray]:
        """(the blocks' per-stream context, the embedded timestep `[batch, tokens or 1, dim]` for the head)."""
        cfg = self.cfg
        stream: StreamConfig = cfg.audio if audio else cfg.video
        prefix = "audio_" if audio else ""
        dtype = x.dtype
        b = x.shape[0]
        mult = cfg.timestep_scale_multiplier
        adaln: AdaLNSingle = getattr(self, f"{prefix}adaln_single")
        ts_emb = adaln.embed((inp.timesteps * mult).reshape(-1), dtype).reshape(b, -1, stream.dim)
        if inp.timestep_offset is not None:
            ts_emb = ts_emb + inp.timestep_offset.astype(dtype)[:, None, :]
        ts_emb = constrain(ts_emb, ("activation_batch", None, None))  # reshape(-1) above drops the batch sharding
        ts_proj = adaln.project(ts_emb)
        prompt_proj = None
        if cfg.cross_attention_adaln:
            prompt_adaln: AdaLNSingle = getattr(self, f"{prefix}prompt_adaln_single")
            prompt_proj = prompt_adaln((inp.sigma * mult).reshape(-1), dtype)[0].reshape(b, -1, 2 * stream.dim)
        context = inp.context.astype(dtype)
        if cfg.caption_channels is not None:
            context = getattr(self, f"{prefix}caption_projection")(context)
        context = context.reshape(b, -1, stream.dim)
        self_soft = None
        if inp.attention_mask is not None:
            m = inp.attention_mask.astype(dtype)
            tiny, low = jnp.finfo(dtype).tiny, jnp.finfo(dtype).min
            self_soft = jnp.where(m > 0, jnp.log(jnp.maximum(m, tiny)), low)[:, None]
        self_mask = None if inp.token_mask is None and self_soft is None else AttentionMask(inp.token_mask, self_soft)
        rope = rope_tables(
            inp.positions,
            dim=stream.dim,
            heads=stream.heads,
            max_pos=stream.max_pos,
            theta=cfg.rope_theta,
            rope_type=cfg.rope_type,
            double_precision=cfg.rope_double_precision,
            dtype=dtype,
        )
        ctx = StreamContext(
            ts_proj, prompt_proj, context, key_mask(inp.context_mask), self_mask, rope, key_mask(inp.token_mask)
        )
        if other is None or not (cfg.has_video and cfg.has_audio):
            return ctx, ts_emb
        cross_rope = rope_tables(
            inp.positions[:, 0:1],
            dim=cfg.audio.dim,
            heads=stream.heads,
            max_pos=(cfg.cross_pe_max_pos,),
            theta=cfg.rope_theta,
            rope_type=cfg.rope_type,
            double_precision=cfg.rope_double_precision,
            dtype=dtype,
        )
        other_sigma = other.sigma.reshape(b, 1) * mult
        scale_shift_t = inp.timesteps * mult if cfg.av_adaln_from_own_timesteps else other_sigma
        scale_shift_adaln: AdaLNSingle = getattr(self, f"av_ca_{'audio' if audio else 'video'}_scale_shift_adaln_single")
        gate_adaln: AdaLNSingle = getattr(self, f"av_ca_{'v2a' if audio else 'a2v'}_gate_adaln_single")
        cross_ss = scale_shift_adaln(scale_shift_t.reshape(-1), dtype)[0].reshape(b, -1, 4 * stream.dim)
        cross_ss = constrain(cross_ss, ("activation_batch", None, None))
        gate_factor = cfg.av_ca_timestep_scale_multiplier / mult
        cross_gate = gate_adaln((other_sigma * gate_factor).reshape(-1), dtype)[0].reshape(b, -1, stream.dim)
        ctx = ctx.replace(cross_rope=cross_rope, cross_scale_shift=cross_ss, cross_gate=cross_gate)
        return ctx, ts_emb

    def _head(self, x: jnp.ndarray, ts_emb: jnp.ndarray, audio: bool) -> jnp.ndarray:
        prefix = "audio_" if audio else ""
        sst = getattr(self, f"{prefix}scale_shift_table")[...].astype(x.dtype)
        shift = sst[0][None, None] + ts_emb
        scale = sst[1][None, None] + ts_emb
        h = layer_norm(x, self.cfg.norm_eps) * (1 + scale) + shift
        return getattr(self, f"{prefix}proj_out")(h)

    # ------------------------------------------------------------------------------------------------------ forward
    def __call__(
        self,
        video: StreamInput | None,
        audio: StreamInput | None,
        perturbations: Perturbations | None = None,
        execution: ExecutionConfig = ExecutionConfig(),
    ) -> tuple[jnp.ndarray | None, jnp.ndarray | None]:
        """Velocities `[batch, video_tokens, out_channels]`, `[batch, audio_tokens, audio_out_channels]`.

        A stream given as None is not run (its output is None), as in ltx-core.
        """
        cfg = self.cfg
        if video is None and audio is None:
            raise ValueError("forward: at least one of video or audio is required")
        if video is not None and not cfg.has_video:
            raise ValueError("forward: this model has no video stream")
        if audio is not None and not cfg.has_audio:
            raise ValueError("forward: this model has no audio stream")
        dtype = jnp.dtype(execution.dtype)
        batch = (video if video is not None else audio).latent.shape[0]
        if perturbations is None:
            perturbations = Perturbations.none(cfg.num_layers, batch)
        vx = ax = vctx = actx = v_emb = a_emb = None
        if video is not None:
            vx = self.patchify_proj(video.latent.astype(dtype))
            vx = constrain(vx, ("activation_batch", "activation_length", "activation_embed"))
            vctx, v_emb = self._stream_context(vx, video, audio, audio=False)
        if audio is not None:
            ax = self.audio_patchify_proj(audio.latent.astype(dtype))
            actx, a_emb = self._stream_context(ax, audio, video, audio=True)

        kind = resolve_attention(execution.attention, jax.default_backend(), execution.dtype)
        kernel = sharded_attention(attention_kernel(kind, execution.attention_chunk))
        graphdef, block_state = nnx.split(self.blocks)

        def body(carry, xs):
            layer_state, skips = xs
            block = nnx.merge(graphdef, layer_state)
            return block(carry[0], carry[1], vctx, actx, skips, kernel), None

        if execution.remat != "none":
            body = jax.checkpoint(body, policy=_REMAT_POLICIES[execution.remat], prevent_cse=False)
        skips = BlockSkips(
            perturbations.skip_video_self_attn,
            perturbations.skip_audio_self_attn,
            perturbations.skip_a2v_cross_attn,
            perturbations.skip_v2a_cross_attn,
        )
        (vx, ax), _ = jax.lax.scan(body, (vx, ax), (block_state, skips))
        v_out = self._head(vx, v_emb, audio=False) if vx is not None else None
        a_out = self._head(ax, a_emb, audio=True) if ax is not None else None
        return v_out, a_out


def build_model(cfg: LTXConfig, rngs: nnx.Rngs) -> LTXModel:
    """A randomly initialised model (parameters carry logical axis names, no eager sharding)."""
    with nnx.use_eager_sharding(False):
        return LTXModel(cfg, rngs)


def abstract_model(cfg: LTXConfig) -> LTXModel:
    """The model with `jax.ShapeDtypeStruct` leaves: shapes and names without allocating parameters."""
    with nnx.use_eager_sharding(False):
        return nnx.eval_shape(lambda: LTXModel(cfg, nnx.Rngs(0)))


@functools.partial(jax.jit, static_argnames=("graphdef", "execution"))
def forward(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    video: StreamInput | None,
    audio: StreamInput | None,
    perturbations: Perturbations | None = None,
    execution: ExecutionConfig = ExecutionConfig(),
) -> tuple[jnp.ndarray | None, jnp.ndarray | None]:
    """Pure, jitted forward: (graphdef, params) from `nnx.split(model)`; see `LTXModel.__call__`."""
    return nnx.merge(graphdef, params)(video, audio, perturbations, execution)

