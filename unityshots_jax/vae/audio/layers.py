"""Building blocks of the audio VAE: causal 2-D convolution over (time, mel), PixelNorm, ResnetBlock, resampling.

Activations are channels-last `[batch, time, mel, channels]`. Attribute paths mirror ltx-core's module paths so
that every parameter has exactly one checkpoint key (see `weights.py`); conv kernels are stored `[kh, kw, I, O]`
and carry `torch_perm`, the permutation from the checkpoint's `[O, I, kh, kw]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

PIXEL_NORM_EPS = 1e-6
# Full-precision float32 convolutions on every backend (no TF32 / bf16 passes): parity is machine-independent.
PRECISION = jax.lax.Precision.HIGHEST
_CONV2D_PERM = (2, 3, 1, 0)


class Buffer(nnx.Variable):
    """A fixed tensor read from the checkpoint (statistics, filters, STFT bases); never trained."""


class Conv2d(nnx.Module):
    """Plain 2-D convolution; kernel `[kh, kw, in, out]`, bias `[out]`. Padding is applied by the caller."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, *, stride: int = 1):
        self.stride = stride
        self.weight = nnx.Param(jnp.zeros((kernel, kernel, channels_in, channels_out), jnp.float32),
                                sharding_names=(None, None, None, "audio_channels"), torch_perm=_CONV2D_PERM)
        self.bias = nnx.Param(jnp.zeros((channels_out,), jnp.float32), sharding_names=("audio_channels",))

    def __call__(self, x: jnp.ndarray, padding: tuple[tuple[int, int], tuple[int, int]]) -> jnp.ndarray:
        """x `[B, T, F, Cin]` → `[B, T', F', Cout]`; padding ((time front, back), (mel front, back)) of zeros."""
        w = self.weight[...].astype(x.dtype)
        y = jax.lax.conv_general_dilated(x, w, (self.stride, self.stride), padding,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=PRECISION)
        return y + self.bias[...].astype(x.dtype)


class CausalConv2d(nnx.Module):
    """Stride-1 conv, causal in time (k−1 zero rows in front) and centred over mel."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int):
        self.kernel = kernel
        self.conv = Conv2d(channels_in, channels_out, kernel)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, F, Cin]` → `[B, T, F, Cout]`."""
        k = self.kernel - 1
        return self.conv(x, ((k, 0), (k // 2, k - k // 2)))


def pixel_norm(x: jnp.ndarray) -> jnp.ndarray:
    """x `[..., C]` divided by its RMS over channels (eps 1e-6)."""
    return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + PIXEL_NORM_EPS)


class ResnetBlock(nnx.Module):
    """norm → SiLU → conv1 → norm → SiLU → conv2, plus a 1×1 `nin_shortcut` when the channels change."""

    def __init__(self, channels_in: int, channels_out: int):
        self.conv1 = CausalConv2d(channels_in, channels_out, 3)
        self.conv2 = CausalConv2d(channels_out, channels_out, 3)
        self.nin_shortcut = CausalConv2d(channels_in, channels_out, 1) if channels_in != channels_out else None

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, F, Cin]` → `[B, T, F, Cout]`."""
        h = self.conv1(jax.nn.silu(pixel_norm(x)))
        h = self.conv2(jax.nn.silu(pixel_norm(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class Downsample(nnx.Module):
    """Stride-2 3×3 conv; zero padding 2 rows in front of time, 1 column after mel (causal in time)."""

    def __init__(self, channels: int):
        self.conv = Conv2d(channels, channels, 3, stride=2)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, F, C]` → `[B, (T−1)//2 + 1, (F−2)//2 + 1, C]`."""
        return self.conv(x, ((2, 0), (0, 1)))


class Upsample(nnx.Module):
    """Nearest ×2 in time and mel, causal conv, then the first time row dropped (T → 2T − 1)."""

    def __init__(self, channels: int):
        self.conv = CausalConv2d(channels, channels, 3)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, F, C]` → `[B, 2T − 1, 2F, C]`."""
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return self.conv(x)[:, 1:]


class MidBlock(nnx.Module):
    """Two ResnetBlocks at the bottleneck (no attention: the port refuses configs that ask for it)."""

    def __init__(self, channels: int):
        self.block_1 = ResnetBlock(channels, channels)
        self.block_2 = ResnetBlock(channels, channels)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.block_2(self.block_1(x))


class Stage(nnx.Module):
    """One resolution level: `blocks` ResnetBlocks, then an optional `downsample` or `upsample` (its key name)."""

    def __init__(self, channels_in: int, channels_out: int, blocks: int, resample: str | None):
        chans = [channels_in] + [channels_out] * blocks
        self.block = nnx.List([ResnetBlock(chans[i], chans[i + 1]) for i in range(blocks)])
        self.resample = resample
        if resample is not None:
            setattr(self, resample, {"downsample": Downsample, "upsample": Upsample}[resample](channels_out))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, F, Cin]` → `[B, T', F', Cout]`."""
        for block in self.block:
            x = block(x)
        return x if self.resample is None else getattr(self, self.resample)(x)


class PerChannelStatistics(nnx.Module):
    """Latent normalisation statistics `[ch]` (checkpoint `std-of-means`, `mean-of-means`), shared by both halves."""

    def __init__(self, channels: int):
        self.std_of_means = Buffer(jnp.ones((channels,), jnp.float32))
        self.mean_of_means = Buffer(jnp.zeros((channels,), jnp.float32))

    def normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[..., ch]` → (x − mean) / std."""
        return (x - self.mean_of_means[...].astype(x.dtype)) / self.std_of_means[...].astype(x.dtype)

    def un_normalize(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[..., ch]` → x · std + mean."""
        return x * self.std_of_means[...].astype(x.dtype) + self.mean_of_means[...].astype(x.dtype)
