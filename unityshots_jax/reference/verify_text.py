"""Text half of `unityshots verify`: our FeatureExtractorV2 + video / audio connectors against ltx-core.

The reference is ltx-core's `EmbeddingsProcessor`, built from the official file `src` by its own loader
(`SingleGPUModelBuilder` with `EmbeddingsProcessorConfigurator` and `EMBEDDINGS_PROCESSOR_KEY_OPS`) in float32 and
float64; ours is loaded from `weights` (the same file or a converted directory) by `load_text_embeddings`, so the
check covers the loading code users run. The input is seeded random Gemma hidden states (no Gemma is needed): two
prompts, one left-padded, of `TOKENS` tokens. ltx-core sizes the feature extractor from its built-in Gemma-3 12B
config (width 3840, 49 hidden states); a file made for another Gemma width is verified by passing `dim` and
`num_states`, which the reference then uses too.
"""

from __future__ import annotations

import contextlib

import jax.numpy as jnp
import numpy as np
import torch

from unityshots_jax.parity_criterion import ParityResult, parity
from unityshots_jax.reference import tiny_text
from unityshots_jax.text.embeddings import load_text_embeddings

TOKENS = 128  # ltx-core needs a multiple of the connectors' 128 registers
PADDING = (0, 23)  # left padding of each prompt


@contextlib.contextmanager
def _reference_gemma(dim: int, num_states: int):
    """ltx-core's built-in Gemma-3 text config with `dim` / `num_states`, restored afterwards."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    text = GEMMA3_CONFIG_FOR_LTX.text_config
    saved = text.hidden_size, text.num_hidden_layers
    text.hidden_size, text.num_hidden_layers = dim, num_states - 1
    try:
        yield
    finally:
        text.hidden_size, text.num_hidden_layers = saved


def reference_gemma_shape() -> tuple[int, int]:
    """(width, hidden states) of the Gemma ltx-core builds its feature extractor for (Gemma-3 12B: 3840, 49)."""
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    text = GEMMA3_CONFIG_FOR_LTX.text_config
    return text.hidden_size, text.num_hidden_layers + 1


def load_reference_processor(src: str, dim: int, num_states: int, dtype: torch.dtype) -> torch.nn.Module:
    """ltx-core's EmbeddingsProcessor of the official file `src`, for a Gemma of width `dim` with `num_states`."""
    from ltx_core.loader import SingleGPUModelBuilder
    from ltx_core.text_encoders.gemma import EMBEDDINGS_PROCESSOR_KEY_OPS
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EmbeddingsProcessorConfigurator

    torch.set_num_threads(1)
    with _reference_gemma(dim, num_states):
        builder = SingleGPUModelBuilder(model_class_configurator=EmbeddingsProcessorConfigurator, model_path=src,
                                        model_sd_ops=EMBEDDINGS_PROCESSOR_KEY_OPS)
        model = builder.build(device=torch.device("cpu"), dtype=torch.float32)
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if meta:
        raise RuntimeError(f"{src}: text embeddings processor left {meta[:3]} uninitialised")
    return model.to(dtype).eval()


def verify_text(src: str, weights: str | None = None, *, seed: int = 0, dim: int | None = None,
                num_states: int | None = None) -> list[ParityResult]:
    """One `ParityResult` for the video context and one for the audio context (features → connector → registers).

    dim / num_states: the Gemma width and hidden-state count the file's text projection was made for (default:
    ltx-core's built-in Gemma-3 12B, as the official file)."""
    ref_dim, ref_states = reference_gemma_shape()
    dim, num_states = dim or ref_dim, num_states or ref_states
    ours = load_text_embeddings(weights or src, dim, num_states)
    rng = np.random.default_rng(seed)
    states = (3 * rng.standard_normal((num_states, len(PADDING), TOKENS, dim))).astype(np.float32)
    mask = np.ones((len(PADDING), TOKENS), np.int64)
    for row, pads in enumerate(PADDING):
        mask[row, :pads] = 0
    refs = []
    for dtype in (torch.float32, torch.float64):  # one reference model in memory at a time
        processor = load_reference_processor(src, dim, num_states, dtype)
        hidden = [torch.from_numpy(s).to(dtype) for s in states]
        refs.append(tiny_text.process(processor, hidden, torch.from_numpy(mask)))
        del processor, hidden
    video, audio = ours(jnp.asarray(states), jnp.asarray(mask))
    return [parity("text video context", np.asarray(video), refs[0][0], refs[1][0]),
            parity("text audio context", np.asarray(audio), refs[0][1], refs[1][1])]
