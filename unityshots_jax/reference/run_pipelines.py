"""Run ltx-pipelines 1.0.0's own pipeline classes on a tiny stack, in float32 or float64, and record what they drew
and produced (reference side of `tests/test_pipeline_parity.py`).

The classes hard-code bfloat16 (`dtype = torch.bfloat16` inside `__call__`) and call `torch.cuda.synchronize()`.
Their code runs unchanged: the pipeline modules' global `torch` is swapped, for the duration of one run, for a view
of torch whose `bfloat16` is the requested dtype and whose `cuda` calls are no-ops on a CPU. Also for that run:

* every Gaussian draw of the pipeline's noiser is recorded (or, for a float64 run, replayed from the float32 run, so
  both runs start from identical noise: the same seed in another dtype draws other numbers);
* the final latents are recorded, and the decoded video is kept as floats in [0, 1] before its uint8 rounding;
* the text encoder is ltx-core's `GemmaTextEncoder` around the tiny Gemma directory (the official loader wants the
  full Gemma-3 12B directory layout with its image processor), and ltx-core's built-in Gemma shape is set to the
  tiny one so the `EmbeddingsProcessor` is built for it (as `verify_text` does);
* the model ledger caches state dicts in a `StateDictRegistry` instead of its default `DummyRegistry`: with the
  dummy registry ltx-core 1.0.0 fuses a LoRA into the loaded bf16 state dict in place and casts only the adapted
  weights to the run's dtype, which leaves a model of mixed dtypes that cannot run in float32 (the pipelines only
  ever run bf16). With a registry every weight is cast to the run's dtype; the fused values are the same.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
from typing import Any

import numpy as np

from unityshots_jax.reference import torchaudio_compat


@dataclasses.dataclass
class PipelineRun:
    """What one reference run drew and produced (numpy, float64 for comparisons).

    noise: each draw in order (stage 1 video, stage 1 audio[, stage 2 video, stage 2 audio]) as patchified tokens
    `[1, tokens, channels]`; video_latent `[1, C, F, h, w]`; audio_latent `[1, C, Fa, mel]`; frames `[T, H, W, 3]`
    float in [0, 1] and frames_uint8 as the pipeline returns them; wave `[channels, N]`; sample_rate."""

    noise: list[np.ndarray] = dataclasses.field(default_factory=list)
    video_latent: np.ndarray | None = None
    audio_latent: np.ndarray | None = None
    frames: np.ndarray | None = None
    frames_uint8: np.ndarray | None = None
    wave: np.ndarray | None = None
    sample_rate: int = 0


class _NoCuda:
    @staticmethod
    def synchronize(*_args, **_kwargs) -> None:
        return None

    @staticmethod
    def empty_cache(*_args, **_kwargs) -> None:
        return None


def _torch_view(dtype):
    import torch

    class TorchView(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            if name == "bfloat16":
                return dtype
            if name == "cuda":
                return _NoCuda
            return getattr(torch, name)

    return TorchView("torch")


@contextlib.contextmanager
def _patched(module, **attrs):
    saved = {k: getattr(module, k) for k in attrs}
    for k, v in attrs.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(module, k, v)


def _noiser_class(run: PipelineRun, replay: list[np.ndarray] | None):
    import torch
    from ltx_core.components.noisers import GaussianNoiser

    class RecordingNoiser(GaussianNoiser):
        def __call__(self, latent_state, noise_scale=1.0):
            state = latent_state.latent
            if replay is not None:
                noise = torch.from_numpy(replay[len(run.noise)]).to(state.dtype)
            else:
                noise = torch.randn(*state.shape, device=state.device, dtype=state.dtype, generator=self.generator)
            run.noise.append(noise.double().numpy())
            mask = latent_state.denoise_mask * noise_scale
            return dataclasses.replace(latent_state, latent=(noise * mask + state * (1 - mask)).to(state.dtype))

    return RecordingNoiser


def _decoders(run: PipelineRun, decode_video, decode_audio):
    import torch

    def video(latent, decoder, *args, **kwargs):
        run.video_latent = latent.double().numpy()
        generator = kwargs.get("generator", args[1] if len(args) > 1 else None)
        floats = ((decoder(latent, generator=generator) + 1.0) / 2.0).clamp(0.0, 1.0)
        run.frames = floats[0].permute(1, 2, 3, 0).double().numpy()
        chunks = [c for c in decode_video(latent, decoder, *args, **kwargs)]
        run.frames_uint8 = torch.cat(chunks).numpy()
        return iter(chunks)

    def audio(latent, audio_decoder, vocoder):
        run.audio_latent = latent.double().numpy()
        out = decode_audio(latent, audio_decoder, vocoder)
        run.wave, run.sample_rate = out.waveform.double().numpy(), int(out.sampling_rate)
        return out

    return video, audio


def run_pipeline(kind: str, build: dict, call: dict, *, gemma_dir: str, gemma_shape: tuple[int, int],
                 dtype: str = "float32", replay: list[np.ndarray] | None = None) -> PipelineRun:
    """Construct ltx-pipelines' `kind` pipeline ("one_stage", "two_stages", "distilled") with `build` (constructor
    keywords, paths included) and run it with `call` (call keywords) in `dtype`; see the module doc.

    gemma_shape: (width, hidden states) of the tiny Gemma; replay: the noise of an earlier run to reuse."""
    torchaudio_compat.install()
    import ltx_pipelines.ti2vid_one_stage as one_stage
    import ltx_pipelines.ti2vid_two_stages as two_stages
    import torch
    from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
    from ltx_pipelines import distilled
    from ltx_pipelines.utils import helpers, model_ledger

    from unityshots_jax.reference.tiny_text import load_gemma
    from unityshots_jax.reference.verify_text import _reference_gemma

    module, cls = {"one_stage": (one_stage, "TI2VidOneStagePipeline"),
                   "two_stages": (two_stages, "TI2VidTwoStagesPipeline"),
                   "distilled": (distilled, "DistilledPipeline")}[kind]
    torch_dtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    view, run = _torch_view(torch_dtype), PipelineRun()

    from ltx_core.loader.registry import StateDictRegistry

    ledger_init = model_ledger.ModelLedger.__init__

    def init_with_registry(self, *args, **kwargs):
        if kwargs.get("registry") is None:
            kwargs["registry"] = StateDictRegistry()
        ledger_init(self, *args, **kwargs)

    def text_encoder(self):
        model = load_gemma(gemma_dir, double=dtype == "float64").to(self.dtype)
        return GemmaTextEncoder(model=model, tokenizer=LTXVGemmaTokenizer(gemma_dir, 1024)).eval()

    video, audio = _decoders(run, module.vae_decode_video, module.vae_decode_audio)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(module, torch=view, GaussianNoiser=_noiser_class(run, replay),
                                     vae_decode_video=video, vae_decode_audio=audio))
        stack.enter_context(_patched(helpers, torch=view))
        stack.enter_context(_patched(model_ledger, module_ops_from_gemma_root=lambda _root: ()))
        stack.enter_context(_patched(model_ledger.ModelLedger, text_encoder=text_encoder, __init__=init_with_registry))
        stack.enter_context(_reference_gemma(*gemma_shape))
        stack.enter_context(torch.inference_mode())
        pipeline = getattr(module, cls)(device=torch.device("cpu"), **build)
        _ = pipeline(**call)
    return run
