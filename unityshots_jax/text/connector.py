"""`Embeddings1DConnector` of ltx-core 1.0.0: the video / audio text connectors with learnable registers.

    x = registers_fill(features, mask)     valid tokens moved to the front (in order), registers[p mod R] at the
                                           remaining positions p; the mask is all ones afterwards
    pe = rope(arange(T) / max_pos)         split or interleaved, float64 frequency grid when configured
    per block: x = x + attn1(rms(x), pe);  x = x + ff(rms(x))      (gated attention, no mask, no AdaLN)
    x = rms(x)                             weightless RMSNorm, eps 1e-6

R = 128 registers (hard-coded in 1.0.0), so T must be a multiple of 128. Blocks are stacked and scanned.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.ltx.attention import Attention
from unityshots_jax.ltx.attention_kernels import attention_kernel
from unityshots_jax.ltx.layers import FeedForward, rms_norm
from unityshots_jax.ltx.rope import rope_tables

NUM_REGISTERS = 128  # ltx-core 1.0.0 builds every connector with 128 registers (the config key is not read)
ROPE_THETA = 10000.0  # the configurators do not pass a theta; the connector default applies
EPS = 1e-6


class ConnectorConfigError(ValueError):
    """A connector configuration that ltx-core would not build; the message names the config key."""


@dataclasses.dataclass(frozen=True)
class ConnectorConfig:
    """One connector: `heads × head_dim` wide, `num_layers` blocks."""

    heads: int
    head_dim: int
    num_layers: int
    max_pos: tuple[int, ...]
    rope_type: str
    double_precision: bool
    gated: bool
    registers: int = NUM_REGISTERS

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim

    @classmethod
    def from_transformer_config(cls, cfg: dict, audio: bool) -> "ConnectorConfig":
        """From the checkpoint's `transformer` config, with the 1.0.0 configurators' keys and defaults."""
        def get(key: str, default):
            if audio and f"audio_{key}" in cfg:
                return cfg[f"audio_{key}"]
            return cfg.get(key, default)

        rope_type = cfg.get("rope_type", "interleaved")
        if rope_type not in ("split", "interleaved"):
            raise ConnectorConfigError(f"transformer config: rope_type {rope_type!r} is not 'split' or 'interleaved'")
        return cls(
            heads=int(get("connector_num_attention_heads", 30)),
            head_dim=int(get("connector_attention_head_dim", 128)),
            num_layers=int(get("connector_num_layers", 2)),
            max_pos=tuple(int(p) for p in cfg.get("connector_positional_embedding_max_pos", [1])),
            rope_type=rope_type,
            double_precision=cfg.get("frequencies_precision", False) == "float64",
            gated=bool(cfg.get("connector_apply_gated_attention", False)),
        )


class ConnectorBlock(nnx.Module):
    """`_BasicTransformerBlock1D`: self-attention and feed-forward, each on a weightless RMSNorm of x."""

    def __init__(self, cfg: ConnectorConfig, rngs: nnx.Rngs):
        self.attn1 = Attention(cfg.dim, cfg.dim, cfg.heads, cfg.head_dim, gated=cfg.gated, eps=EPS, rngs=rngs)
        self.ff = FeedForward(cfg.dim, rngs)


def fill_registers(x: jnp.ndarray, mask: jnp.ndarray, registers: jnp.ndarray) -> jnp.ndarray:
    """x `[batch, tokens, dim]`, mask `[batch, tokens]`, registers `[R, dim]` → `[batch, tokens, dim]`: each row's
    valid tokens in order at positions 0..n−1, `registers[p mod R]` at positions p ≥ n."""
    b, t, _ = x.shape
    valid = mask > 0
    order = jnp.argsort(jnp.logical_not(valid).astype(jnp.int32), axis=1, stable=True)
    front = jnp.take_along_axis(x, order[:, :, None], axis=1)
    n = jnp.sum(valid, axis=1, keepdims=True)
    pos = jnp.arange(t)
    fill = registers.astype(x.dtype)[pos % registers.shape[0]]
    return jnp.where((pos[None, :] < n)[:, :, None], front, fill[None])


class EmbeddingsConnector(nnx.Module):
    """`learnable_registers` `[R, dim]` and stacked `transformer_1d_blocks` (our name: `blocks`)."""

    def __init__(self, cfg: ConnectorConfig, rngs: nnx.Rngs):
        self.cfg = cfg
        regs = jax.random.uniform(rngs.params(), (cfg.registers, cfg.dim), jnp.float32, -1.0, 1.0)
        self.learnable_registers = nnx.Param(regs, sharding_names=(None, "embed"))

        @nnx.split_rngs(splits=cfg.num_layers)
        @nnx.vmap(in_axes=(0,), out_axes=0, axis_size=cfg.num_layers, transform_metadata={nnx.PARTITION_NAME: "layers"})
        def make(r: nnx.Rngs) -> ConnectorBlock:
            return ConnectorBlock(cfg, r)

        self.blocks = make(rngs)

    def __call__(self, x: jnp.ndarray, mask: jnp.ndarray, attention: str = "dense") -> jnp.ndarray:
        """features `[batch, tokens, dim]`, mask `[batch, tokens]` → `[batch, tokens, dim]` (tokens % R == 0)."""
        cfg = self.cfg
        b, t, _ = x.shape
        if t % cfg.registers:
            raise ValueError(f"connector: {t} tokens is not a multiple of the {cfg.registers} registers")
        x = fill_registers(x, mask, self.learnable_registers[...])
        grid = np.arange(t, dtype=np.float32)
        positions = jnp.asarray(np.stack([grid, grid], axis=-1)[None, None])  # [1, 1, t, 2]
        rope = rope_tables(positions, dim=cfg.dim, heads=cfg.heads, max_pos=cfg.max_pos, theta=ROPE_THETA,
                           rope_type=cfg.rope_type, double_precision=cfg.double_precision, dtype=x.dtype, middle=False)
        rope = jax.tree.map(lambda a: jnp.broadcast_to(a, (b,) + a.shape[1:]), rope)
        kernel = attention_kernel(attention)
        graphdef, state = nnx.split(self.blocks)

        def body(h, layer_state):
            block: ConnectorBlock = nnx.merge(graphdef, layer_state)
            h = h + block.attn1(rms_norm(h, EPS), kernel, q_rope=rope)
            return h + block.ff(rms_norm(h, EPS)), None

        x, _ = jax.lax.scan(body, x, state)
        return rms_norm(x, EPS)
