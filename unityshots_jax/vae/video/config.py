"""The video VAE's configuration, read from a checkpoint's `metadata["config"]["vae"]`.

Exactly the keys ltx-core 1.0.0's `VideoEncoderConfigurator` / `VideoDecoderConfigurator` read, with their
defaults — note two defaults that differ between the halves: `spatial_padding_mode` is "zeros" for the encoder
but "reflect" for the decoder when the key is absent, and `timestep_conditioning` defaults to True (decoder).
Keys the configurators do not read (`scaling_factor`, `use_quant_conv`, …) are ignored, as ltx-core ignores them.
An option the port does not implement is refused with a `VideoVAEConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
LOG_VAR_MODES = ("per_channel", "uniform", "constant")  # "none" is refused: ltx-core's own encoder breaks on it
ENCODER_BLOCKS = (
    "res_x", "res_x_y", "compress_time", "compress_space", "compress_all", "compress_all_x_y",
    "compress_all_res", "compress_space_res", "compress_time_res",
)
DECODER_BLOCKS = ("res_x", "res_x_y", "compress_time", "compress_space", "compress_all")

# stride (time, height, width) of every block that changes the grid
STRIDES = {
    "compress_time": (2, 1, 1), "compress_space": (1, 2, 2), "compress_all": (2, 2, 2), "compress_all_x_y": (2, 2, 2),
    "compress_all_res": (2, 2, 2), "compress_space_res": (1, 2, 2), "compress_time_res": (2, 1, 1),
}


class VideoVAEConfigError(ValueError):
    """A `vae` config the port cannot build; the message names the key."""


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One encoder/decoder block. multiplier: channel factor (×out in the encoder, ÷ in the decoder)."""

    name: str
    num_layers: int = 1
    multiplier: int = 1
    residual: bool = False

    @property
    def stride(self) -> tuple[int, int, int]:
        return STRIDES.get(self.name, (1, 1, 1))


@dataclasses.dataclass(frozen=True)
class VideoVAEConfig:
    """Both halves of the LTX video VAE. Blocks are listed from the pixel side, as in the checkpoint config."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 128
    patch_size: int = 4
    latent_log_var: str = "uniform"
    encoder_padding: str = "zeros"
    decoder_padding: str = "reflect"
    encoder_blocks: tuple[BlockSpec, ...] = ()
    decoder_blocks: tuple[BlockSpec, ...] = ()
    causal_decoder: bool = False
    timestep_conditioning: bool = False
    decoder_base_channels: int = 128

    @property
    def temporal_scale(self) -> int:
        """Pixel frames per latent frame step (8 for LTX)."""
        t = 1
        for block in self.encoder_blocks:
            t *= block.stride[0]
        return t

    @property
    def spatial_scale(self) -> int:
        """Pixels per latent cell along H and W (32 for LTX)."""
        s = self.patch_size
        for block in self.encoder_blocks:
            s *= block.stride[1]
        return s

    @property
    def decoder_temporal_scale(self) -> int:
        t = 1
        for block in self.decoder_blocks:
            t *= block.stride[0]
        return t

    @property
    def decoder_spatial_scale(self) -> int:
        s = self.patch_size
        for block in self.decoder_blocks:
            s *= block.stride[1]
        return s


def _choice(cfg: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...], what: str) -> str:
    value = cfg.get(key, default)
    if value not in allowed:
        raise VideoVAEConfigError(
            f"vae.{key}: {value!r} is not supported for the {what} (supported: {', '.join(allowed)})")
    return value


def _int(cfg: Mapping[str, Any], key: str, default: int) -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise VideoVAEConfigError(f"vae.{key}: expected a positive integer, got {value!r}")
    return value


def _blocks(cfg: Mapping[str, Any], key: str, allowed: tuple[str, ...],
            default_multiplier: dict[str, int]) -> tuple[BlockSpec, ...]:
    raw = cfg.get(key, [])
    if not isinstance(raw, (list, tuple)):
        raise VideoVAEConfigError(f"vae.{key}: expected a list of [name, params] pairs, got {type(raw).__name__}")
    out = []
    for i, entry in enumerate(raw):
        where = f"vae.{key}[{i}]"
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise VideoVAEConfigError(f"{where}: expected [name, params], got {entry!r}")
        name, params = entry
        if name not in allowed:
            raise VideoVAEConfigError(f"{where}: block {name!r} is not supported (supported: {', '.join(allowed)})")
        params = {"num_layers": params} if isinstance(params, int) and not isinstance(params, bool) else params
        if not isinstance(params, dict):
            raise VideoVAEConfigError(f"{where}: params must be an integer or an object, got {params!r}")
        if params.get("inject_noise", False):
            raise VideoVAEConfigError(f"{where}.inject_noise: noise injection is not supported (it draws random noise)")
        if name == "res_x" and "num_layers" not in params:
            raise VideoVAEConfigError(f"{where}.num_layers: missing (a res_x block needs it)")
        num_layers = params.get("num_layers", 1)
        multiplier = params.get("multiplier", default_multiplier.get(name, 1))
        for field, value in (("num_layers", num_layers), ("multiplier", multiplier)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise VideoVAEConfigError(f"{where}.{field}: expected a positive integer, got {value!r}")
        residual = params.get("residual", False)
        if not isinstance(residual, bool):
            raise VideoVAEConfigError(f"{where}.residual: expected true or false, got {residual!r}")
        out.append(BlockSpec(name, num_layers, multiplier, residual and name == "compress_all"))
    return tuple(out)


_ENCODER_MULT = {
    n: 2 for n in ("res_x_y", "compress_all_x_y", "compress_all_res", "compress_space_res", "compress_time_res")}
_DECODER_MULT = {"res_x_y": 2}


def vae_config_from_checkpoint(config: Mapping[str, Any]) -> VideoVAEConfig:
    """The `VideoVAEConfig` of a checkpoint's full `metadata["config"]` dict (its `vae` section)."""
    if not isinstance(config, Mapping) or not isinstance(config.get("vae"), Mapping):
        raise VideoVAEConfigError("metadata['config'] has no 'vae' section; the checkpoint carries no video VAE")
    cfg = config["vae"]
    if cfg.get("dims", 3) != 3:
        raise VideoVAEConfigError(f"vae.dims: {cfg.get('dims')!r} is not supported (only 3-D convolutions)")
    if cfg.get("norm_layer", "pixel_norm") != "pixel_norm":
        raise VideoVAEConfigError(f"vae.norm_layer: {cfg.get('norm_layer')!r} is not supported (only pixel_norm)")
    causal = cfg.get("causal_decoder", False)
    timestep = cfg.get("timestep_conditioning", True)
    for key, value in (("causal_decoder", causal), ("timestep_conditioning", timestep)):
        if not isinstance(value, bool):
            raise VideoVAEConfigError(f"vae.{key}: expected true or false, got {value!r}")
    patch = _int(cfg, "patch_size", 4)
    base = _int(cfg, "decoder_base_channels", 128)
    return VideoVAEConfig(
        in_channels=_int(cfg, "in_channels", 3),
        out_channels=_int(cfg, "out_channels", 3),
        latent_channels=_int(cfg, "latent_channels", 128),
        patch_size=patch,
        latent_log_var=_choice(cfg, "latent_log_var", "uniform", LOG_VAR_MODES, "encoder"),
        encoder_padding=_choice(cfg, "spatial_padding_mode", "zeros", PADDING_MODES, "encoder"),
        decoder_padding=_choice(cfg, "spatial_padding_mode", "reflect", PADDING_MODES, "decoder"),
        encoder_blocks=_blocks(cfg, "encoder_blocks", ENCODER_BLOCKS, _ENCODER_MULT),
        decoder_blocks=_blocks(cfg, "decoder_blocks", DECODER_BLOCKS, _DECODER_MULT),
        causal_decoder=causal,
        timestep_conditioning=timestep,
        decoder_base_channels=base,
    )


def _blocks_list(entries: list[tuple[str, int]]) -> list[list]:
    return [[n, {"num_layers": v} if n == "res_x" else {"multiplier": v}] for n, v in entries]


# The `vae` section of the LTX-2.3 22B checkpoint's metadata (third-party extraction, `ltx23_architecture.md`
# Appendix C); its tensor table and parameter counts are checked against ltx-core in tests/test_video_vae_layout.py.
LTX23_VAE: dict[str, Any] = {
    "_class_name": "CausalVideoAutoencoder", "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False, "timestep_conditioning": False,
    "normalize_latent_channels": False, "encoder_base_channels": 128, "decoder_base_channels": 128,
    "spatial_padding_mode": "zeros",
    "encoder_blocks": _blocks_list([
        ("res_x", 4), ("compress_space_res", 2), ("res_x", 6), ("compress_time_res", 2), ("res_x", 4),
        ("compress_all_res", 2), ("res_x", 2), ("compress_all_res", 1), ("res_x", 2)]),
    "decoder_blocks": _blocks_list([
        ("res_x", 4), ("compress_space", 2), ("res_x", 6), ("compress_time", 2), ("res_x", 4),
        ("compress_all", 1), ("res_x", 2), ("compress_all", 2), ("res_x", 2)]),
}
