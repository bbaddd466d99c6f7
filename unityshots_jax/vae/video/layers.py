"""Building blocks of the LTX video VAE, channels-last: every activation is `[batch, frames, height, width, channels]`.

ltx-core works channels-first (`[B, C, F, H, W]`); we keep channels last so the convolutions map onto XLA's
NDHWC/DHWIO layout without transposes. Channel *orderings* of the space↔depth rearrangements are the reference's
(documented per function), so a converted kernel sees its channels where the reference put them.

Parameter names mirror ltx-core's module paths (`conv1.conv.kernel` ↔ `conv1.conv.weight`), so the checkpoint
key of a parameter is its attribute path (see `keys.py`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.ltx.timestep import TIMESTEP_CHANNELS, timestep_embedding

PIXEL_NORM_EPS = 1e-8
GROUP_NORM_EPS = 1e-6
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class Stat(nnx.Variable):
    """A non-trained buffer (the latent per-channel statistics)."""


class Conv(nnx.Module):
    """A plain convolution (ltx-core's inner `nn.Conv3d`/`nn.Conv2d`): kernel `[*k, Ci, Co]`, bias `[Co]`."""

    def __init__(self, kernel: tuple[int, ...], cin: int, cout: int, rngs: nnx.Rngs, dtype=jnp.float32):
        fan_in = cin * math.prod(kernel)
        w = jax.random.normal(rngs.params(), (*kernel, cin, cout), dtype) / math.sqrt(fan_in)
        self.kernel = nnx.Param(w, sharding_names=(None,) * len(kernel) + ("vae_in", "vae_out"))
        self.bias = nnx.Param(jnp.zeros((cout,), dtype), sharding_names=("vae_out",))

    def __call__(self, x: jnp.ndarray, stride: tuple[int, ...] | None = None) -> jnp.ndarray:
        """VALID convolution, channels last. x `[B, *spatial, Ci]` → `[B, *spatial', Co]`."""
        nd = self.kernel.ndim - 2
        dims = {3: ("NDHWC", "DHWIO", "NDHWC"), 2: ("NHWC", "HWIO", "NHWC")}[nd]
        y = jax.lax.conv_general_dilated(
            x, self.kernel[...].astype(x.dtype), window_strides=stride or (1,) * nd, padding="VALID",
            dimension_numbers=dims)
        return y + self.bias[...].astype(x.dtype)


def pad_spatial(x: jnp.ndarray, pad: int, mode: str) -> jnp.ndarray:
    """Pad H and W of `[B, F, H, W, C]` (or `[B, H, W, C]`) by `pad` each side in torch's `padding_mode`."""
    widths = [(0, 0)] * x.ndim
    widths[-3] = widths[-2] = (pad, pad)
    return jnp.pad(x, widths, mode=_PAD_MODES[mode])


class CausalConv3d(nnx.Module):
    """ltx-core `CausalConv3d` (k=3): spatial padding 1 in `padding_mode`, temporal padding by frame replication.

    causal: the first frame repeated k−1 times in front; non-causal: first and last frames (k−1)/2 times each side.
    """

    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs, *, padding_mode: str = "zeros",
                 stride: tuple[int, int, int] = (1, 1, 1), dtype=jnp.float32):
        self.conv = Conv((3, 3, 3), cin, cout, rngs, dtype)
        self.padding_mode = padding_mode
        self.stride = tuple(stride)

    def __call__(self, x: jnp.ndarray, causal: bool = True) -> jnp.ndarray:
        """x `[B, F, H, W, Ci]` → `[B, F', H', W', Co]` (F' = F for stride 1)."""
        k = self.conv.kernel.shape[0]
        if causal:
            x = jnp.concatenate([jnp.repeat(x[:, :1], k - 1, axis=1), x], axis=1)
        else:
            half = (k - 1) // 2
            x = jnp.concatenate([jnp.repeat(x[:, :1], half, axis=1), x, jnp.repeat(x[:, -1:], half, axis=1)], axis=1)
        return self.conv(pad_spatial(x, self.conv.kernel.shape[1] // 2, self.padding_mode), self.stride)


def pixel_norm(x: jnp.ndarray, eps: float = PIXEL_NORM_EPS) -> jnp.ndarray:
    """x / sqrt(mean(x², channels) + eps). x `[..., C]`."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


class GroupNorm(nnx.Module):
    """torch `GroupNorm(groups, C)` over `[B, ..., C]`: statistics per sample and group across all other axes."""

    def __init__(self, channels: int, groups: int, eps: float, dtype=jnp.float32):
        self.scale = nnx.Param(jnp.ones((channels,), dtype), sharding_names=("vae_out",))
        self.bias = nnx.Param(jnp.zeros((channels,), dtype), sharding_names=("vae_out",))
        self.groups = groups
        self.eps = eps

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, ..., C]` → same shape."""
        shape = x.shape
        g = x.reshape(shape[0], -1, self.groups, shape[-1] // self.groups)
        mean = jnp.mean(g, axis=(1, 3), keepdims=True)
        var = jnp.mean(jnp.square(g - mean), axis=(1, 3), keepdims=True)
        g = (g - mean) * jax.lax.rsqrt(var + self.eps)
        return g.reshape(shape) * self.scale[...].astype(x.dtype) + self.bias[...].astype(x.dtype)


class TimestepMLP(nnx.Module):
    """ltx-core `TimestepEmbedding`: Linear 256→dim, SiLU, Linear dim→dim."""

    def __init__(self, dim: int, rngs: nnx.Rngs, dtype=jnp.float32):
        init = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "vae_out"))
        self.linear_1 = nnx.Linear(TIMESTEP_CHANNELS, dim, rngs=rngs, param_dtype=dtype, kernel_init=init)
        self.linear_2 = nnx.Linear(dim, dim, rngs=rngs, param_dtype=dtype, kernel_init=init)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, 256]` → `[B, dim]`."""
        return self.linear_2(jax.nn.silu(self.linear_1(x)))


class TimeEmbedder(nnx.Module):
    """ltx-core `PixArtAlphaCombinedTimestepSizeEmbeddings` (no size embedding): sinusoid(256) → MLP."""

    def __init__(self, dim: int, rngs: nnx.Rngs, dtype=jnp.float32):
        self.timestep_embedder = TimestepMLP(dim, rngs, dtype)

    def __call__(self, t: jnp.ndarray, dtype) -> jnp.ndarray:
        """t `[B]` scaled timesteps → `[B, dim]` in `dtype` (sinusoid in float32, as ltx-core)."""
        return self.timestep_embedder(timestep_embedding(t).astype(dtype))


def modulate(x: jnp.ndarray, shift: jnp.ndarray, scale: jnp.ndarray) -> jnp.ndarray:
    """x·(1 + scale) + shift with `[B, C]` shift/scale broadcast over `[B, F, H, W, C]`."""
    return x * (1 + scale[:, None, None, None, :]) + shift[:, None, None, None, :]


class ResnetBlock3D(nnx.Module):
    """PixelNorm → SiLU → conv1 → PixelNorm → SiLU → conv2, plus the input (GroupNorm(1) + 1×1 conv if C
    changes).

    timestep_conditioning (19B-era decoders): a `scale_shift_table` `[4, C]` plus the block's timestep embedding
    give (shift1, scale1, shift2, scale2), applied after each PixelNorm.
    """

    def __init__(self, cin: int, cout: int, rngs: nnx.Rngs, *, padding_mode: str, timestep_conditioning: bool = False,
                 dtype=jnp.float32):
        self.conv1 = CausalConv3d(cin, cout, rngs, padding_mode=padding_mode, dtype=dtype)
        self.conv2 = CausalConv3d(cout, cout, rngs, padding_mode=padding_mode, dtype=dtype)
        self.scale_shift_table = (nnx.Param(jnp.zeros((4, cin), dtype), sharding_names=(None, "vae_out"))
                                  if timestep_conditioning else None)
        if cin != cout:
            self.norm3 = GroupNorm(cin, 1, GROUP_NORM_EPS, dtype)
            self.conv_shortcut = Conv((1, 1, 1), cin, cout, rngs, dtype)
        else:
            self.norm3 = None
            self.conv_shortcut = None

    def __call__(self, x: jnp.ndarray, causal: bool, time: jnp.ndarray | None = None) -> jnp.ndarray:
        """x `[B, F, H, W, Ci]` → `[B, F, H, W, Co]`; time `[B, 4·Ci]` (conditioned blocks only)."""
        h = pixel_norm(x)
        if self.scale_shift_table is not None:
            ada = self.scale_shift_table[...].astype(x.dtype)[None] + time.reshape(time.shape[0], 4, -1)
            h = modulate(h, ada[:, 0], ada[:, 1])
        h = pixel_norm(self.conv1(jax.nn.silu(h), causal))
        if self.scale_shift_table is not None:
            h = modulate(h, ada[:, 2], ada[:, 3])
        h = self.conv2(jax.nn.silu(h), causal)
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(self.norm3(x))
        return x + h


class ResBlockStack(nnx.Module):
    """ltx-core `UNetMidBlock3D`: `num_layers` ResnetBlock3Ds at one width, optionally timestep-conditioned (one
    `time_embedder` to 4·C for the whole stack)."""

    def __init__(self, channels: int, num_layers: int, rngs: nnx.Rngs, *, padding_mode: str,
                 timestep_conditioning: bool = False, dtype=jnp.float32):
        self.time_embedder = TimeEmbedder(4 * channels, rngs, dtype) if timestep_conditioning else None
        self.res_blocks = nnx.List([
            ResnetBlock3D(channels, channels, rngs, padding_mode=padding_mode,
                          timestep_conditioning=timestep_conditioning, dtype=dtype)
            for _ in range(num_layers)])

    def __call__(self, x: jnp.ndarray, causal: bool, timestep: jnp.ndarray | None = None) -> jnp.ndarray:
        """x `[B, F, H, W, C]` → same shape; timestep `[B]` scaled (conditioned stacks only)."""
        time = None if self.time_embedder is None else self.time_embedder(timestep, x.dtype)
        for block in self.res_blocks:
            x = block(x, causal, time)
        return x


def space_to_depth(x: jnp.ndarray, stride: tuple[int, int, int]) -> jnp.ndarray:
    """`[B, F·p1, H·p2, W·p3, C]` → `[B, F, H, W, C·p1·p2·p3]`, channel index ((c·p1 + i)·p2 + j)·p3 + k
    (ltx-core's `b c (d p1) (h p2) (w p3) -> b (c p1 p2 p3) d h w`)."""
    p1, p2, p3 = stride
    b, f, h, w, c = x.shape
    x = x.reshape(b, f // p1, p1, h // p2, p2, w // p3, p3, c)
    x = x.transpose(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, f // p1, h // p2, w // p3, c * p1 * p2 * p3)


def depth_to_space(x: jnp.ndarray, stride: tuple[int, int, int]) -> jnp.ndarray:
    """Inverse of `space_to_depth`: `[B, F, H, W, C·p1·p2·p3]` → `[B, F·p1, H·p2, W·p3, C]`."""
    p1, p2, p3 = stride
    b, f, h, w, cp = x.shape
    c = cp // (p1 * p2 * p3)
    x = x.reshape(b, f, h, w, c, p1, p2, p3)
    x = x.transpose(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, f * p1, h * p2, w * p3, c)


def patchify(x: jnp.ndarray, patch: int) -> jnp.ndarray:
    """Pixels → channels: `[B, F, H·p, W·p, C]` → `[B, F, H, W, C·p·p]`, channel index (c·p + r)·p + q with r
    the **width** offset and q the height offset (ltx-core's `b c (f 1) (h q) (w r) -> b (c 1 r q) f h w`)."""
    b, f, h, w, c = x.shape
    x = x.reshape(b, f, h // patch, patch, w // patch, patch, c)  # q at axis 3, r at axis 5
    x = x.transpose(0, 1, 2, 4, 6, 5, 3)
    return x.reshape(b, f, h // patch, w // patch, c * patch * patch)


def unpatchify(x: jnp.ndarray, patch: int) -> jnp.ndarray:
    """Inverse of `patchify`: `[B, F, H, W, C·p·p]` → `[B, F, H·p, W·p, C]`."""
    b, f, h, w, cp = x.shape
    c = cp // (patch * patch)
    x = x.reshape(b, f, h, w, c, patch, patch)  # r at axis 5, q at axis 6
    x = x.transpose(0, 1, 2, 6, 3, 5, 4)
    return x.reshape(b, f, h * patch, w * patch, c)


class SpaceToDepthDownsample(nnx.Module):
    """Encoder `*_res` block: causal conv to Co/∏stride channels then space-to-depth, plus a space-to-depth skip of
    the input averaged over channel groups of Ci·∏stride/Co. A temporal stride first prepends the first frame."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], rngs: nnx.Rngs, *, padding_mode: str,
                 dtype=jnp.float32):
        self.stride = tuple(stride)
        self.group_size = cin * math.prod(stride) // cout
        self.conv = CausalConv3d(cin, cout // math.prod(stride), rngs, padding_mode=padding_mode, dtype=dtype)

    def __call__(self, x: jnp.ndarray, causal: bool = True) -> jnp.ndarray:
        """x `[B, F, H, W, Ci]` → `[B, F/p1, H/p2, W/p3, Co]` (F+1 frames first when p1 = 2)."""
        if self.stride[0] == 2:
            x = jnp.concatenate([x[:, :1], x], axis=1)
        skip = space_to_depth(x, self.stride)
        skip = skip.reshape(*skip.shape[:-1], -1, self.group_size).mean(axis=-1)
        return space_to_depth(self.conv(x, causal), self.stride) + skip


class DepthToSpaceUpsample(nnx.Module):
    """Decoder `compress_*` block: conv to ∏stride·Ci/mult channels, depth-to-space, drop the first frame when the
    time stride is 2; `residual` adds the depth-to-space of the input tiled ∏stride/mult times over channels."""

    def __init__(self, cin: int, stride: tuple[int, int, int], multiplier: int, residual: bool, rngs: nnx.Rngs, *,
                 padding_mode: str, dtype=jnp.float32):
        self.stride = tuple(stride)
        self.multiplier = multiplier
        self.residual = residual
        cout = math.prod(stride) * cin // multiplier
        self.conv = CausalConv3d(cin, cout, rngs, padding_mode=padding_mode, dtype=dtype)

    def __call__(self, x: jnp.ndarray, causal: bool = True) -> jnp.ndarray:
        """x `[B, F, H, W, Ci]` → `[B, F·p1 (−1 if p1 = 2), H·p2, W·p3, Ci·p/mult/p]`."""
        y = depth_to_space(self.conv(x, causal), self.stride)
        if self.residual:
            skip = depth_to_space(x, self.stride)
            skip = jnp.tile(skip, (1, 1, 1, 1, math.prod(self.stride) // self.multiplier))
            y = y + skip
        if self.stride[0] == 2:
            y = y[:, 1:]
        return y


class LatentStatistics(nnx.Module):
    """ltx-core `PerChannelStatistics`: normalize = (x − mean)/std, un_normalize = x·std + mean over `[..., C]`."""

    def __init__(self, channels: int, dtype=jnp.float32):
        self.std_of_means = Stat(jnp.ones((channels,), dtype))
        self.mean_of_means = Stat(jnp.zeros((channels,), dtype))

    def normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        return (x - self.mean_of_means[...].astype(x.dtype)) / self.std_of_means[...].astype(x.dtype)

    def un_normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        return x * self.std_of_means[...].astype(x.dtype) + self.mean_of_means[...].astype(x.dtype)
