"""The full-size LTX-2.3 video VAE and ×2 upsampler from their real configs: our expected tensor table equals
ltx-core 1.0.0's (built on the meta device, official key filters applied in reverse), and the parameter counts
are the reference's (VAE encoder 318.94M, decoder 407.17M; upsampler 126.25M, `ltx23_architecture.md` §8, §10)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ltx_core")

from flax import nnx  # noqa: E402
from ltx_core.model.upsampler import LatentUpsamplerConfigurator  # noqa: E402
from ltx_core.model.video_vae import VideoDecoderConfigurator, VideoEncoderConfigurator  # noqa: E402

from unityshots_jax.vae.loading import default_key, expected_tensors  # noqa: E402
from unityshots_jax.vae.upsampler import LatentUpsampler, UpsamplerConfig  # noqa: E402
from unityshots_jax.vae.video.config import LTX23_VAE, vae_config_from_checkpoint  # noqa: E402
from unityshots_jax.vae.video.keys import video_vae_tensors  # noqa: E402


def _reference_table(module: torch.nn.Module, prefix: str) -> dict[str, tuple[int, ...]]:
    table = {}
    for name, t in module.state_dict().items():
        if name.startswith("per_channel_statistics."):
            table["vae." + name] = tuple(t.shape)
        else:
            table[prefix + name] = tuple(t.shape)
    return table


def test_full_ltx23_vae_tensor_table_and_sizes():
    config = {"vae": LTX23_VAE}
    with torch.device("meta"):
        enc = VideoEncoderConfigurator.from_config(config)
        dec = VideoDecoderConfigurator.from_config(config)
    reference = {**_reference_table(enc, "vae.encoder."), **_reference_table(dec, "vae.decoder.")}
    ours = video_vae_tensors(vae_config_from_checkpoint(config))
    assert ours == reference
    assert len([k for k in ours if k.startswith("vae.decoder.")]) == 84  # + 2 shared statistics = A.3's 86
    count = {p: sum(math.prod(s) for k, s in ours.items() if k.startswith(p)) for p in ("vae.encoder.", "vae.decoder.")}
    assert round(count["vae.encoder."] / 1e6, 2) == 318.94
    assert round(count["vae.decoder."] / 1e6, 2) == 407.17


def test_default_upsampler_tensor_table_and_size():
    with torch.device("meta"):
        ref = LatentUpsamplerConfigurator.from_config({})
    reference = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    ours = expected_tensors(lambda: LatentUpsampler(UpsamplerConfig.from_config({}), nnx.Rngs(0)), default_key)
    assert ours == reference and len(ours) == 72
    assert round(sum(math.prod(s) for s in ours.values()) / 1e6, 2) == 126.25
