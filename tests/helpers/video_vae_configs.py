"""Tiny `vae` configs for the video VAE parity tests (the 2.3 layout shrunk, and layouts the port was not tuned on)."""

from __future__ import annotations


def ltx23_tiny(latent_channels: int = 16, base: int = 8, num_layers: int = 1) -> dict:
    """The LTX-2.3 `vae` config (`LTX23_VAE`) with `num_layers` per res block and small channel counts."""
    from unityshots_jax.vae.video.config import LTX23_VAE

    def shrink(blocks):
        return [[name, {"num_layers": num_layers} if name == "res_x" else dict(params)] for name, params in blocks]

    return {**LTX23_VAE, "latent_channels": latent_channels, "decoder_base_channels": base,
            "encoder_blocks": shrink(LTX23_VAE["encoder_blocks"]),
            "decoder_blocks": shrink(LTX23_VAE["decoder_blocks"])}


def other_layout() -> dict:
    """A layout the port was not tuned on: 8 latent channels, reflect padding, a causal decoder, per-channel
    log-variance, strided encoder convs (`compress_space`, `compress_all_x_y`), `res_x_y` channel changes, a residual
    `compress_all`, int block params."""
    return {
        "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 8, "patch_size": 4,
        "norm_layer": "pixel_norm", "latent_log_var": "per_channel", "causal_decoder": True,
        "timestep_conditioning": False, "decoder_base_channels": 4, "spatial_padding_mode": "reflect",
        "encoder_blocks": [
            ["res_x", 2], ["compress_space", 1], ["res_x_y", {"multiplier": 2}],
            ["compress_time_res", {"multiplier": 2}],
            ["compress_all_x_y", {"multiplier": 2}], ["res_x", 1], ["compress_all_res", {"multiplier": 1}],
        ],
        "decoder_blocks": [
            ["res_x", 1], ["compress_space", {"multiplier": 2}], ["compress_time", {"multiplier": 1}],
            ["res_x_y", {"multiplier": 2}], ["compress_all", {"residual": True, "multiplier": 2}],
            ["compress_all", {"multiplier": 1}], ["res_x", 2],
        ],
    }


def vae_files(root, configs: dict[str, dict], seed: int = 0):
    """get(name) -> path of a tiny random official-layout VAE file for `configs[name]`, written once under `root`."""
    from unityshots_jax.reference.tiny_media import write_tiny_vae

    made: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in made:
            made[name] = str(root / f"{name}.safetensors")
            write_tiny_vae(made[name], configs[name], seed=seed + len(made))
        return made[name]

    return get


def timestep_conditioned() -> dict:
    """A 19B-era style decoder: timestep conditioning (+ decode noise), reflect padding, residual `compress_all`
    blocks, 2 layers per res block; 16 latent channels, base 8."""
    cfg = ltx23_tiny(num_layers=2)
    cfg.update(timestep_conditioning=True, spatial_padding_mode="reflect")
    cfg["decoder_blocks"] = [
        ["res_x", {"num_layers": 1}], ["compress_space", {"multiplier": 2}], ["res_x", {"num_layers": 2}],
        ["compress_time", {"multiplier": 2}], ["res_x", {"num_layers": 1}],
        ["compress_all", {"residual": True, "multiplier": 1}], ["res_x", {"num_layers": 2}],
        ["compress_all", {"residual": True, "multiplier": 2}], ["res_x", {"num_layers": 1}],
    ]
    return cfg
