"""Video half of `unityshots verify`: our video VAE encoder and decoder against ltx-core on seeded inputs.

The reference is built from the official file `src` by ltx-core's own loader (float32 and float64); ours from
`weights` (the same file or a converted directory), so the check covers the loading code users run. Inputs are small
(9 frames of 64×64; a 2×2×2 latent) so a full-size VAE checks in reasonable time on a CPU.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from unityshots_jax.parity_criterion import ParityResult, parity
from unityshots_jax.reference.tiny_media import run_reference
from unityshots_jax.vae.video.keys import load_video_decoder, load_video_encoder

FRAMES, SIZE = 9, 64
LATENT_GRID = (2, 2, 2)


def verify_video(src: str, weights: str | None = None, *, seed: int = 0) -> list[ParityResult]:
    """One `ParityResult` for the encoder and one for the decoder (fed the decode noise explicitly if the decoder is
    timestep-conditioned)."""
    weights = weights or src
    rng = np.random.default_rng(seed)
    video = rng.uniform(-1, 1, (1, 3, FRAMES, SIZE, SIZE)).astype(np.float32)
    encoder = load_video_encoder(weights)
    ref = run_reference(src, "encoder", video)
    ours = np.moveaxis(np.asarray(encoder(jnp.asarray(np.moveaxis(video, 1, -1)))), -1, 1)
    rows = [parity("video encoder", ours, ref["float32"], ref["float64"])]
    decoder = load_video_decoder(weights)
    latent = rng.standard_normal((1, ref["float32"].shape[1], *LATENT_GRID)).astype(np.float32)
    last = lambda x: jnp.asarray(np.moveaxis(x, 1, -1))  # noqa: E731
    if decoder.cfg.timestep_conditioning:
        noise = rng.standard_normal(latent.shape).astype(np.float32)
        ref = run_reference(src, "decoder", latent, noise=noise)
        out = decoder(last(latent), noise=last(noise))
    else:
        ref = run_reference(src, "decoder", latent)
        out = decoder(last(latent))
    rows.append(parity("video decoder", np.moveaxis(np.asarray(out), -1, 1), ref["float32"], ref["float64"]))
    return rows
