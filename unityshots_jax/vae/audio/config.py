"""Typed configuration of LTX's audio VAE, its mel front end and its vocoder, read from checkpoint metadata.

Exactly the keys ltx-core 1.0.0's `AudioEncoderConfigurator`, `AudioDecoderConfigurator` and
`VocoderConfigurator` read, with the same defaults (`metadata["config"]["audio_vae"]` and `["vocoder"]`). Options
the port does not implement (attention blocks, GroupNorm, non-causal or width-causal convolutions, HiFi-GAN
ResBlock2, plain Snake) are refused with an `AudioConfigError` naming the key. Keys ltx-core ignores are ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from unityshots_jax.checkpoint.safetensors_io import CheckpointError

DDCONFIG = "audio_vae.model.params.ddconfig"
LATENT_DOWNSAMPLE = 4  # mel frames per latent frame (ltx-core's LATENT_DOWNSAMPLE_FACTOR)


class AudioConfigError(CheckpointError):
    """An audio VAE / vocoder configuration the port cannot build; the message names the key."""


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise AudioConfigError(f"{key}: expected an integer, got {value!r}")
    return int(value)


def _ints(value: Any, key: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple, set)):
        raise AudioConfigError(f"{key}: expected a list of integers, got {value!r}")
    return tuple(_int(v, key) for v in (sorted(value) if isinstance(value, set) else value))


def _dict(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise AudioConfigError(f"{key}: expected an object, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class AudioVAEConfig:
    """The audio VAE (encoder and decoder share it) and its mel front end.

    ch: base channels (also the per-channel statistics' size, = z_channels · latent mel bins);
    ch_mult: channel multiplier per level (len − 1 stride-2 down/up samplings of time and mel);
    mel_bins: mel bins of the spectrogram; sample_rate / mel_hop_length / n_fft: the front end's STFT.
    """

    ch: int = 128
    out_ch: int = 2
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 8
    double_z: bool = True
    in_channels: int = 2
    mel_bins: int = 64
    sample_rate: int = 16000
    mel_hop_length: int = 160
    n_fft: int = 1024
    is_causal: bool = True

    @property
    def levels(self) -> int:
        return len(self.ch_mult)

    @property
    def latent_mel_bins(self) -> int:
        """Mel bins of the latent (`mel_bins` halved, rounding up, at every level but the last)."""
        bins = self.mel_bins
        for _ in range(self.levels - 1):
            bins = (bins - 2) // 2 + 1
        return bins

    @property
    def latent_channels(self) -> int:
        """Features per latent frame after patchifying: z_channels · latent mel bins."""
        return self.z_channels * self.latent_mel_bins

    def decoded_frames(self, latent_frames: int) -> int:
        """Mel frames the decoder returns for `latent_frames` latent frames (causal: 4·F − 3, at least 1)."""
        return max(latent_frames * LATENT_DOWNSAMPLE - (LATENT_DOWNSAMPLE - 1), 1)


def audio_vae_config(config: dict) -> AudioVAEConfig:
    """The audio VAE config of a checkpoint's full `metadata["config"]`; refuses what the port does not implement."""
    audio = _dict(config.get("audio_vae", {}), "audio_vae")
    params = _dict(_dict(audio.get("model", {}), "audio_vae.model").get("params", {}), "audio_vae.model.params")
    dd = _dict(params.get("ddconfig", {}), DDCONFIG)
    pre = _dict(audio.get("preprocessing", {}), "audio_vae.preprocessing")
    stft = _dict(pre.get("stft", {}), "audio_vae.preprocessing.stft")
    mel = _dict(pre.get("mel", {}), "audio_vae.preprocessing.mel")
    variables = _dict(audio.get("variables", {}), "audio_vae.variables")

    refused = {"norm_type": ("pixel", "pixel"), "causality_axis": ("height", "height")}
    for key, (default, supported) in refused.items():
        if dd.get(key, default) != supported:
            raise AudioConfigError(f"{DDCONFIG}.{key}: {dd.get(key)!r} is not supported (only {supported!r})")
    if dd.get("mid_block_add_attention", True):
        raise AudioConfigError(f"{DDCONFIG}.mid_block_add_attention: attention blocks are not supported (set false)")
    if not dd.get("resamp_with_conv", True):
        raise AudioConfigError(f"{DDCONFIG}.resamp_with_conv: false is not supported (causal downsampling needs it)")
    if dd.get("attn_type", "vanilla") not in ("vanilla", "linear", "none"):
        raise AudioConfigError(f"{DDCONFIG}.attn_type: unknown value {dd.get('attn_type')!r}")
    ch_mult = _ints(dd.get("ch_mult", (1, 2, 4)), f"{DDCONFIG}.ch_mult")
    resolution = _int(dd.get("resolution", 256), f"{DDCONFIG}.resolution")
    attn = set(_ints(dd.get("attn_resolutions", {8, 16, 32}), f"{DDCONFIG}.attn_resolutions"))
    used = sorted(r for r in (resolution // 2**i for i in range(len(ch_mult))) if r in attn)
    if used:
        raise AudioConfigError(f"{DDCONFIG}.attn_resolutions: attention at resolution {used} is not supported")
    if not ch_mult:
        raise AudioConfigError(f"{DDCONFIG}.ch_mult: must not be empty")
    mel_bins = dd.get("mel_bins") or mel.get("n_mel_channels") or variables.get("mel_bins")
    if mel_bins is None:
        raise AudioConfigError(f"{DDCONFIG}.mel_bins: missing (also absent as preprocessing.mel.n_mel_channels)")
    cfg = AudioVAEConfig(
        ch=_int(dd.get("ch", 128), f"{DDCONFIG}.ch"),
        out_ch=_int(dd.get("out_ch", 2), f"{DDCONFIG}.out_ch"),
        ch_mult=ch_mult,
        num_res_blocks=_int(dd.get("num_res_blocks", 2), f"{DDCONFIG}.num_res_blocks"),
        z_channels=_int(dd.get("z_channels", 8), f"{DDCONFIG}.z_channels"),
        double_z=bool(dd.get("double_z", True)),
        in_channels=_int(dd.get("in_channels", 2), f"{DDCONFIG}.in_channels"),
        mel_bins=_int(mel_bins, f"{DDCONFIG}.mel_bins"),
        sample_rate=_int(params.get("sampling_rate", 16000), "audio_vae.model.params.sampling_rate"),
        mel_hop_length=_int(stft.get("hop_length", 160), "audio_vae.preprocessing.stft.hop_length"),
        n_fft=_int(stft.get("filter_length", 1024), "audio_vae.preprocessing.stft.filter_length"),
        is_causal=bool(stft.get("causal", True)),
    )
    for name in ("ch", "out_ch", "num_res_blocks", "z_channels", "in_channels", "mel_bins", "sample_rate",
                 "mel_hop_length", "n_fft"):
        if getattr(cfg, name) <= 0:
            raise AudioConfigError(f"{DDCONFIG}.{name}: must be positive, got {getattr(cfg, name)}")
    return cfg


@dataclasses.dataclass(frozen=True)
class VocoderConfig:
    """One mel → waveform generator (`Vocoder`): BigVGAN v2 (resblock "AMP1", SnakeBeta) or HiFi-GAN ("1").

    Input is always 128 channels (2 stereo channels × 64 mel bins), output 2 channels.
    """

    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    upsample_rates: tuple[int, ...] = (6, 5, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 15, 8, 4, 4)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_initial_channel: int = 1024
    resblock: str = "1"
    output_sampling_rate: int = 24000
    activation: str = "snake"
    use_tanh_at_final: bool = True
    apply_final_activation: bool = True
    use_bias_at_final: bool = True

    @property
    def is_amp(self) -> bool:
        return self.resblock == "AMP1"

    @property
    def hop(self) -> int:
        """Output samples per input mel frame (product of the upsample rates)."""
        out = 1
        for r in self.upsample_rates:
            out *= r
        return out

    def stage_channels(self, stage: int) -> int:
        return self.upsample_initial_channel // 2 ** (stage + 1)


@dataclasses.dataclass(frozen=True)
class VocoderWithBWEConfig:
    """LTX-2.3's vocoder: `vocoder` at `input_sampling_rate`, then bandwidth extension to `output_sampling_rate`."""

    vocoder: VocoderConfig
    bwe_generator: VocoderConfig
    input_sampling_rate: int
    output_sampling_rate: int
    hop_length: int
    n_fft: int
    num_mels: int

    @property
    def ratio(self) -> int:
        return self.output_sampling_rate // self.input_sampling_rate


def _require(cfg: dict, key: str, expected: Any, where: str) -> None:
    if cfg.get(key) != expected:
        raise AudioConfigError(f"{where}.{key}: {cfg.get(key)!r} is not supported (expected {expected!r})")


def _generator(cfg: dict, where: str, *, apply_final_activation: bool,
               output_sampling_rate: int | None) -> VocoderConfig:
    kernels = _ints(cfg.get("resblock_kernel_sizes", [3, 7, 11]), f"{where}.resblock_kernel_sizes")
    dilations = cfg.get("resblock_dilation_sizes", [[1, 3, 5], [1, 3, 5], [1, 3, 5]])
    if not isinstance(dilations, (list, tuple)):
        raise AudioConfigError(f"{where}.resblock_dilation_sizes: expected a list of lists, got {dilations!r}")
    dilations = tuple(_ints(d, f"{where}.resblock_dilation_sizes") for d in dilations)
    rates = _ints(cfg.get("upsample_rates", [6, 5, 2, 2, 2]), f"{where}.upsample_rates")
    up_kernels = _ints(cfg.get("upsample_kernel_sizes", [16, 15, 8, 4, 4]), f"{where}.upsample_kernel_sizes")
    if len(rates) != len(up_kernels):
        raise AudioConfigError(
            f"{where}.upsample_kernel_sizes: {len(up_kernels)} entries for {len(rates)} upsample_rates")
    if len(kernels) != len(dilations):
        raise AudioConfigError(f"{where}.resblock_dilation_sizes: {len(dilations)} entries for {len(kernels)} kernels")
    if any(len(d) != 3 for d in dilations):
        raise AudioConfigError(f"{where}.resblock_dilation_sizes: each entry needs 3 dilations, got {dilations}")
    rate = output_sampling_rate if output_sampling_rate is not None else cfg.get("output_sampling_rate", 24000)
    return VocoderConfig(
        resblock_kernel_sizes=kernels,
        upsample_rates=rates,
        upsample_kernel_sizes=up_kernels,
        resblock_dilation_sizes=dilations,
        upsample_initial_channel=_int(cfg.get("upsample_initial_channel", 1024), f"{where}.upsample_initial_channel"),
        resblock=str(cfg.get("resblock", "1")),
        output_sampling_rate=_int(rate, f"{where}.output_sampling_rate"),
        activation=str(cfg.get("activation", "snake")),
        use_tanh_at_final=bool(cfg.get("use_tanh_at_final", True)),
        apply_final_activation=apply_final_activation,
        use_bias_at_final=bool(cfg.get("use_bias_at_final", True)),
    )


def vocoder_config(config: dict) -> VocoderConfig | VocoderWithBWEConfig:
    """The vocoder of a checkpoint's full config: `VocoderWithBWEConfig` (2.3, nested `vocoder` + `bwe`) or a plain
    HiFi-GAN `VocoderConfig` (19B, flat)."""
    cfg = _dict(config.get("vocoder", {}), "vocoder")
    if "bwe" not in cfg:
        _require(cfg, "resblock", "1", "vocoder")
        _require(cfg, "stereo", True, "vocoder")
        return _generator(cfg, "vocoder", apply_final_activation=True, output_sampling_rate=None)
    main = _dict(cfg.get("vocoder", {}), "vocoder.vocoder")
    bwe = _dict(cfg["bwe"], "vocoder.bwe")
    for part, where in ((main, "vocoder.vocoder"), (bwe, "vocoder.bwe")):
        _require(part, "resblock", "AMP1", where)
        _require(part, "stereo", True, where)
        _require(part, "activation", "snakebeta", where)
    for key in ("input_sampling_rate", "output_sampling_rate", "hop_length", "n_fft", "num_mels"):
        if key not in bwe:
            raise AudioConfigError(f"vocoder.bwe.{key}: missing")
    rate_in = _int(bwe["input_sampling_rate"], "vocoder.bwe.input_sampling_rate")
    rate_out = _int(bwe["output_sampling_rate"], "vocoder.bwe.output_sampling_rate")
    if rate_in <= 0 or rate_out < rate_in:
        raise AudioConfigError(
            f"vocoder.bwe.output_sampling_rate: {rate_out} must be at least the input rate {rate_in}")
    out = VocoderWithBWEConfig(
        vocoder=_generator(main, "vocoder.vocoder", apply_final_activation=True, output_sampling_rate=rate_in),
        bwe_generator=_generator(bwe, "vocoder.bwe", apply_final_activation=False, output_sampling_rate=rate_out),
        input_sampling_rate=rate_in,
        output_sampling_rate=rate_out,
        hop_length=_int(bwe["hop_length"], "vocoder.bwe.hop_length"),
        n_fft=_int(bwe["n_fft"], "vocoder.bwe.n_fft"),
        num_mels=_int(bwe["num_mels"], "vocoder.bwe.num_mels"),
    )
    if out.hop_length <= 0 or out.n_fft < out.hop_length:
        raise AudioConfigError(f"vocoder.bwe.n_fft: {out.n_fft} must be at least hop_length {out.hop_length} > 0")
    if out.bwe_generator.hop != out.hop_length * out.ratio:
        raise AudioConfigError(
            f"vocoder.bwe.upsample_rates: product {out.bwe_generator.hop} must equal hop_length × rate ratio "
            f"({out.hop_length} × {out.ratio})")
    return out
