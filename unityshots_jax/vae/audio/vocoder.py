"""The mel → waveform generator of ltx-core 1.0.0 (`Vocoder`): BigVGAN v2 (AMP1 + SnakeBeta) or HiFi-GAN.

Activations are `[batch, time, channels]`. Input: log-mel `[B, T, 64, 2]` (stereo), flattened to 128 channels
channel-major (`s·64 + m`, as ltx-core's `b s c t -> b (s c) t`). conv_pre → per stage a transposed conv, then the
mean of `len(resblock_kernel_sizes)` residual blocks → act_post → conv_post (2 channels) → clamp (or tanh).
BigVGAN's anti-aliased activations use the Kaiser-sinc filters stored in the checkpoint (read, never
recomputed), applied as depthwise convolutions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unityshots_jax.vae.audio.config import VocoderConfig
from unityshots_jax.vae.audio.layers import PRECISION, Buffer

LRELU_SLOPE = 0.1
INPUT_CHANNELS = 128  # 2 stereo channels × 64 mel bins, fixed in every released vocoder
SNAKE_EPS = 1e-9


class Conv1d(nnx.Module):
    """1-D conv, kernel `[k, in, out]` (checkpoint `[out, in, k]`), symmetric zero padding `dilation·(k−1)/2`."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, *, dilation: int = 1, bias: bool = True):
        self.dilation = dilation
        self.pad = dilation * (kernel - 1) // 2
        self.weight = nnx.Param(jnp.zeros((kernel, channels_in, channels_out), jnp.float32),
                                sharding_names=(None, None, "audio_channels"), torch_perm=(2, 1, 0))
        self.bias = nnx.Param(jnp.zeros((channels_out,), jnp.float32), sharding_names=("audio_channels",)) if bias \
            else None

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, Cin]` → `[B, T, Cout]`."""
        total = self.dilation * (self.weight.shape[0] - 1)
        y = jax.lax.conv_general_dilated(x, self.weight[...].astype(x.dtype), (1,), [(self.pad, total - self.pad)],
                                         rhs_dilation=(self.dilation,), dimension_numbers=("NWC", "WIO", "NWC"),
                                         precision=PRECISION)
        return y if self.bias is None else y + self.bias[...].astype(x.dtype)


class ConvTranspose1d(nnx.Module):
    """Transposed 1-D conv, stride s, padding (k − s)/2; kernel `[k, in, out]` (checkpoint `[in, out, k]`)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int):
        self.stride = stride
        self.padding = (kernel - stride) // 2
        self.weight = nnx.Param(jnp.zeros((kernel, channels_in, channels_out), jnp.float32),
                                sharding_names=(None, None, "audio_channels"), torch_perm=(2, 0, 1))
        self.bias = nnx.Param(jnp.zeros((channels_out,), jnp.float32), sharding_names=("audio_channels",))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, Cin]` → `[B, (T − 1)·s + k − 2p, Cout]`."""
        k = self.weight.shape[0]
        edge = k - 1 - self.padding
        w = jnp.flip(self.weight[...].astype(x.dtype), 0)
        y = jax.lax.conv_general_dilated(x, w, (1,), [(edge, edge)], lhs_dilation=(self.stride,),
                                         dimension_numbers=("NWC", "WIO", "NWC"), precision=PRECISION)
        return y + self.bias[...].astype(x.dtype)


def _depthwise(x: jnp.ndarray, taps: jnp.ndarray, *, stride: int = 1, dilate: int = 1,
               padding: tuple[int, int] = (0, 0)) -> jnp.ndarray:
    """Correlate every channel of x `[B, T, C]` with the same `taps` `[K]` (stride, input dilation, zero padding).

    Written as K shifted multiply-adds (one fused loop) rather than a grouped convolution, which XLA:CPU runs as a
    slow generic loop nest; the same sums in tap order."""
    b, t, c = x.shape
    if dilate > 1:  # zeros between samples: [B, T, C] → [B, (T − 1)·dilate + 1, C]
        x = jnp.concatenate([x[:, :, None], jnp.zeros((b, t, dilate - 1, c), x.dtype)], axis=2)
        x = x.reshape(b, t * dilate, c)[:, : (t - 1) * dilate + 1]
    x = jnp.pad(x, ((0, 0), padding, (0, 0)))
    k = taps.shape[0]
    length = (x.shape[1] - k) // stride + 1
    acc = jnp.promote_types(x.dtype, jnp.float32)  # bf16 inputs accumulate in fp32, as the convolution did
    taps, xs = taps.astype(acc), x.astype(acc)
    span = stride * (length - 1) + 1
    out = taps[0] * xs[:, 0:span:stride]
    for i in range(1, k):
        out = out + taps[i] * xs[:, i: i + span: stride]
    return out.astype(x.dtype)


def upsample_filtered(x: jnp.ndarray, taps: jnp.ndarray, ratio: int, pad: int, crop_left: int) -> jnp.ndarray:
    """x `[B, T, C]` → `[B, ratio·T, C]`: edge-pad by `pad`, transposed conv with `taps` `[K]` at stride `ratio`,
    times `ratio`, then `crop_left` samples dropped in front (BigVGAN's `UpSample1d`)."""
    length = x.shape[1]
    k = taps.shape[0]
    xp = jnp.pad(x, ((0, 0), (pad, pad), (0, 0)), mode="edge")
    y = _depthwise(xp, jnp.flip(taps), dilate=ratio, padding=(k - 1, k - 1))
    return ratio * y[:, crop_left: crop_left + ratio * length]


def lowpass_downsample(x: jnp.ndarray, taps: jnp.ndarray, stride: int) -> jnp.ndarray:
    """x `[B, T, C]` → `[B, (T − 1)//stride + 1, C]`: edge padding (K/2 − 1 front for even K, K/2 back), then
    correlation with `taps` `[K]` at `stride` (BigVGAN's `LowPassFilter1d`)."""
    k = taps.shape[0]
    xp = jnp.pad(x, ((0, 0), (k // 2 - (1 - k % 2), k // 2), (0, 0)), mode="edge")
    return _depthwise(xp, taps, stride=stride)


class SnakeBeta(nnx.Module):
    """x + sin²(x·e^α) / (e^β + 1e-9), per channel (log-scale α, β `[C]`)."""

    def __init__(self, channels: int):
        self.alpha = nnx.Param(jnp.zeros((channels,), jnp.float32), sharding_names=("audio_channels",))
        self.beta = nnx.Param(jnp.zeros((channels,), jnp.float32), sharding_names=("audio_channels",))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        alpha = jnp.exp(self.alpha[...].astype(x.dtype))
        beta = jnp.exp(self.beta[...].astype(x.dtype))
        return x + (1.0 / (beta + SNAKE_EPS)) * jnp.square(jnp.sin(x * alpha))


class FilterBuffer(nnx.Module):
    """Holds one checkpoint filter `[1, 1, K]` under the attribute name `filter`."""

    def __init__(self, kernel: int = 12):
        self.filter = Buffer(jnp.zeros((1, 1, kernel), jnp.float32))

    def taps(self, dtype) -> jnp.ndarray:
        return self.filter[...].reshape(-1).astype(dtype)


class DownSample1d(nnx.Module):
    def __init__(self):
        self.lowpass = FilterBuffer()


class Activation1d(nnx.Module):
    """Anti-aliased SnakeBeta: ×2 Kaiser-sinc upsampling → SnakeBeta → Kaiser low-pass ÷2."""

    def __init__(self, channels: int):
        self.act = SnakeBeta(channels)
        self.upsample = FilterBuffer()
        self.downsample = DownSample1d()

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """x `[B, T, C]` → `[B, T, C]`."""
        up = self.upsample.taps(x.dtype)
        k = up.shape[0]
        pad = k // 2 - 1
        y = upsample_filtered(x, up, 2, pad, 2 * pad + (k - 2) // 2)
        return lowpass_downsample(self.act(y), self.downsample.lowpass.taps(x.dtype), 2)


class AMPBlock1(nnx.Module):
    """BigVGAN v2 block: 3 × (act → dilated conv → act → conv, residual)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        self.convs1 = nnx.List([Conv1d(channels, channels, kernel, dilation=d) for d in dilations])
        self.convs2 = nnx.List([Conv1d(channels, channels, kernel) for _ in dilations])
        self.acts1 = nnx.List([Activation1d(channels) for _ in dilations])
        self.acts2 = nnx.List([Activation1d(channels) for _ in dilations])

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.acts1, self.acts2):
            x = x + c2(a2(c1(a1(x))))
        return x


class ResBlock1(nnx.Module):
    """HiFi-GAN block: 3 × (LeakyReLU 0.1 → dilated conv → LeakyReLU 0.1 → conv, residual)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        self.convs1 = nnx.List([Conv1d(channels, channels, kernel, dilation=d) for d in dilations])
        self.convs2 = nnx.List([Conv1d(channels, channels, kernel) for _ in dilations])

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(jax.nn.leaky_relu(c1(jax.nn.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


def stereo_mel_to_channels(mel: jnp.ndarray) -> jnp.ndarray:
    """log-mel `[B, T, M, 2]` → `[B, T, 2·M]` (channel s·M + m)."""
    b, t, m, s = mel.shape
    return jnp.swapaxes(mel, 2, 3).reshape(b, t, s * m)


class Vocoder(nnx.Module):
    """mel `[B, T, 64, 2]` → waveform `[B, T·hop, 2]` at `cfg.output_sampling_rate`."""

    def __init__(self, cfg: VocoderConfig):
        self.cfg = cfg
        c0 = cfg.upsample_initial_channel
        self.conv_pre = Conv1d(INPUT_CHANNELS, c0, 7)
        self.ups = nnx.List([ConvTranspose1d(c0 // 2**i, c0 // 2 ** (i + 1), k, s)
                             for i, (s, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))])
        block = AMPBlock1 if cfg.is_amp else ResBlock1
        self.resblocks = nnx.List([
            block(cfg.stage_channels(i), k, d)
            for i in range(len(cfg.upsample_rates))
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes)])
        final = cfg.stage_channels(len(cfg.upsample_rates) - 1)
        self.act_post = Activation1d(final) if cfg.is_amp else None
        self.conv_post = Conv1d(final, 2, 7, bias=cfg.use_bias_at_final)

    def __call__(self, mel: jnp.ndarray) -> jnp.ndarray:
        """mel `[B, T, 64, 2]` → waveform `[B, T·prod(upsample_rates), 2]`."""
        cfg = self.cfg
        x = self.conv_pre(stereo_mel_to_channels(mel))
        n = len(cfg.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            if not cfg.is_amp:
                x = jax.nn.leaky_relu(x, LRELU_SLOPE)
            x = up(x)
            outs = [self.resblocks[i * n + j](x) for j in range(n)]
            x = sum(outs[1:], outs[0]) / n
        x = self.act_post(x) if cfg.is_amp else jax.nn.leaky_relu(x, 0.01)
        x = self.conv_post(x)
        if cfg.apply_final_activation:
            x = jnp.tanh(x) if cfg.use_tanh_at_final else jnp.clip(x, -1.0, 1.0)
        return x

