"""LTX-2.3's single-clip pipelines in JAX: one-stage, two-stage (×2 upsample + distilled-LoRA refine) and distilled.

They compute what ltx-pipelines 1.0.0's `TI2VidOneStagePipeline`, `TI2VidTwoStagesPipeline` and
`DistilledPipeline` compute, step for step (`tests/test_pipeline_parity.py` checks it against them):

* text: prompt and negative prompt through the Gemma-3 text path of the `ltx23` codecs (`codecs.text`);
* I2V: the first-frame image prepared as the reference prepares it (`media.image_conditioning`), encoded by the
  video VAE at the stage's size, its latent frame kept clean (denoise mask 0) — `VideoConditionByLatentIndex`;
* one-stage: LTX2Scheduler sigmas (`steps`), Euler, multi-modal guidance per stream;
* two-stage: stage 1 at half the height and width (rounded up to whole latents, see `stage1_size`) with guidance; the stage-1 video latent through the ×2
  upsampler; stage 2 at full size with the refine weights (the model with the distilled LoRA merged), re-noised
  with σ₀ = 0.909375 from the upsampled video and the stage-1 audio, 3 unguided steps on the stage-2 sigmas;
* distilled: the distilled checkpoint, 8 unguided steps on the distilled sigmas at half size, then the same
  refine stage with the same weights.

Noise: per stage a video and an audio draw (`StageNoise`), by default from `jax.random` with the request's seed;
tests inject the reference's draws. Decoding: the codecs' tiled video decode and audio VAE + vocoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.checkpoint.ltx_convert import load_params, params_as
from unityshots_jax.checkpoint.ltx_lora import merge_loras, read_lora
from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.sampling import (
    LTX23_AUDIO,
    LTX23_STEPS,
    LTX23_VIDEO,
    GuidanceParams,
    distilled_sigmas,
    ltx2_sigmas,
)  # fmt: skip
from unityshots_jax.ltx.transformer import abstract_model
from unityshots_jax.media.image_conditioning import DEFAULT_IMAGE_CRF, load_conditioning_image
from unityshots_jax.pipeline.clip_denoise import ClipInputs, ClipStage, denoise_clip

# ltx_pipelines.utils.constants.DEFAULT_NEGATIVE_PROMPT is a long list; the pipelines default to it. Ours is the
# same idea, shorter; `ClipRequest.negative_prompt` overrides it.
DEFAULT_NEGATIVE_PROMPT = ("blurry, out of focus, low quality, worst quality, jpeg artifacts, distorted, deformed, "
                           "watermark, text, subtitles, static, frozen frame, inconsistent motion, noise, muffled audio")


class PipelineInputError(ValueError):
    """A request the pipeline cannot produce (size, frame count, image); the message names the field."""


@dataclasses.dataclass(frozen=True)
class ClipRequest:
    """One clip: `frames` (8k + 1) at `fps`, `height × width` px (multiples of 32; the two-stage pipelines run stage 1 at
    `Ltx23Pipelines.stage1_size`), the prompt and negative prompt, an optional first-frame
    image (path; `image_crf` 0 skips the H.264 round trip) and the seed of the default noise."""

    prompt: str
    height: int
    width: int
    frames: int
    fps: float = 24.0
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    image: str | None = None
    image_strength: float = 1.0
    image_crf: float = DEFAULT_IMAGE_CRF
    seed: int = 10


@dataclasses.dataclass(frozen=True)
class StageNoise:
    """One stage's Gaussian draws: video `[1, F, h, w, C]`, audio `[1, Fa, Ca]` (the stage's latent shapes)."""

    video: np.ndarray
    audio: np.ndarray


@dataclasses.dataclass(frozen=True)
class ClipResult:
    """video_latent `[F, h, w, C]`, audio_latent `[Fa, Ca]` (float32); frames `[frames, H, W, 3]` in [0, 1];
    audio `[N, channels]` at `sample_rate`."""

    video_latent: np.ndarray
    audio_latent: np.ndarray
    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int
    fps: float


@dataclasses.dataclass(frozen=True)
class Transformer:
    """A loaded LTX transformer: `nnx.split` of `LTXModel` (parameters in the run's dtype)."""

    graphdef: nnx.GraphDef
    params: nnx.State


def transformer_from_tree(cfg: LTXConfig, tree: dict) -> Transformer:
    """A `Transformer` from a pure parameter tree (as `load_params` returns, cast as the run needs)."""
    graphdef, state = nnx.split(abstract_model(cfg))
    nnx.replace_by_pure_dict(state, tree)
    return Transformer(graphdef, state)


def load_transformers(converted: str, dtype: str, loras: Sequence[tuple[str, float]] = ()
                      ) -> tuple[LTXConfig, Transformer, Transformer | None]:
    """(config, the model, the model with `loras` merged or None) from a directory written by `unityshots convert`,
    parameters in `dtype`. loras: official LoRA files and strengths (e.g. the distilled LoRA at 1.0), merged in
    ltx-core's order after the cast, as ltx-core builds a model of that dtype."""
    cfg, tree = load_params(converted)
    base = params_as(tree, dtype)
    del tree
    refined = merge_loras(base, [(read_lora(path, cfg), strength) for path, strength in loras]) if loras else None
    return cfg, transformer_from_tree(cfg, base), None if refined is None else transformer_from_tree(cfg, refined)


def _check_request(request: ClipRequest, multiple: int, temporal: int) -> None:
    if request.frames < 1 or (request.frames - 1) % temporal:
        raise PipelineInputError(f"frames: {request.frames} is not {temporal}k+1 (e.g. 121)")
    for field in ("height", "width"):
        size = getattr(request, field)
        if size < multiple or size % multiple:
            raise PipelineInputError(f"{field}: {size} px is not a positive multiple of {multiple}")
    if request.fps <= 0:
        raise PipelineInputError(f"fps: must be positive, got {request.fps}")
    if not 0.0 <= request.image_strength <= 1.0:
        raise PipelineInputError(f"image_strength: {request.image_strength} is outside [0, 1]")


class Ltx23Pipelines:
    """The pipelines over one set of codecs and one transformer (and, for two-stage, the refine weights).

    codecs: the `ltx23` bundle (text, video VAE with encoder and — for two-stage/distilled — the upsampler, audio);
    transformer: the stage-1 model; refiner: the stage-2 model (the dev model with the distilled LoRA merged; the
    distilled model itself for `distilled`); execution: dtype and attention of the transformer runs.
    """

    def __init__(self, codecs: CodecBundle, transformer: Transformer, refiner: Transformer | None = None,
                 execution: ExecutionConfig | None = None):
        self.codecs, self.transformer, self.refiner = codecs, transformer, refiner
        self.execution = execution or ExecutionConfig(dtype="float32")

    # ----------------------------------------------------------------------------------------------- shapes
    def latent_shapes(self, request: ClipRequest, size: tuple[int, int] | None = None
                      ) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """((F, h, w, C), (Fa, Ca)) of the clip at `size` (height, width) px (default: the request's); the audio
        length follows the clip's duration (round(frames / fps · latent rate), as ltx-core's `AudioLatentShape`)."""
        height, width = size or (request.height, request.width)
        video = self.codecs.video.latent_shape(request.frames, height, width)
        audio_frames = round(request.frames / request.fps * self.codecs.audio.latent_rate)
        return video, (audio_frames, self.codecs.audio.latent_channels)

    @staticmethod
    def stage1_size(request: ClipRequest) -> tuple[int, int]:
        """(height, width) px of a two-stage pipeline's first stage: half the target, rounded up to a multiple of
        32 px (a whole latent), so a target that is a multiple of 32 but not of 64 (1376 × 768 → 688 × 384 would be
        21.5 latents wide) runs stage 1 at 704 × 384 and crops the upsampled latent back to 43 × 24."""
        return tuple(-(-size // 64) * 32 for size in (request.height, request.width))

    def draw_noise(self, request: ClipRequest, stage: int, size: tuple[int, int] | None = None) -> StageNoise:
        """The default noise of `stage` (0, 1) at `size` px: standard normal from `request.seed`, drawn in float32."""
        (f, h, w, c), (fa, ca) = self.latent_shapes(request, size)
        kv, ka = jax.random.split(jax.random.fold_in(jax.random.key(request.seed), stage))
        return StageNoise(np.asarray(jax.random.normal(kv, (1, f, h, w, c))), np.asarray(jax.random.normal(ka, (1, fa, ca))))

    # ----------------------------------------------------------------------------------------------- pieces
    def contexts(self, request: ClipRequest) -> tuple[np.ndarray, ...]:
        """(video, audio, negative video, negative audio) contexts `[1, S, D]`: both prompts in one call."""
        text = self.codecs.text.encode([request.prompt, request.negative_prompt])
        return text.video[:1], text.audio[:1], text.video[1:], text.audio[1:]

    def first_frame(self, request: ClipRequest, height: int, width: int) -> np.ndarray | None:
        """The I2V image's latent `[1, h, w, C]` at `height × width`, or None for T2V."""
        if request.image is None:
            return None
        image = load_conditioning_image(request.image, height, width, request.image_crf)
        return self.codecs.video.encode((image / np.float32(255.0))[None])

    def _stage_inputs(self, request, contexts, noise: StageNoise, video_start, audio_start,
                      size: tuple[int, int]) -> ClipInputs:
        (f, h, w, c), (fa, ca) = self.latent_shapes(request, size)
        if audio_start is not None:  # a story shot's audio length is its own, not the clip duration's
            fa = audio_start.shape[1]
        start = np.zeros((1, f, h, w, c), np.float32) if video_start is None else np.array(video_start, np.float32)
        mask = np.ones((1, f, h, w, 1), np.float32)
        image = self.first_frame(request, *size)
        if image is not None:  # VideoConditionByLatentIndex(latent_idx=0): replace frame 0, mask 1 − strength
            start[:, 0] = image
            mask[:, 0] = 1.0 - request.image_strength
        audio = np.zeros((1, fa, ca), np.float32) if audio_start is None else np.asarray(audio_start, np.float32)
        for name, got, want in (("video", noise.video.shape, start.shape), ("audio", noise.audio.shape, audio.shape)):
            if tuple(got) != tuple(want):
                raise PipelineInputError(f"{name} noise: shape {list(got)}, the stage needs {list(want)}")
        v, a, nv, na = contexts
        return ClipInputs(*(jnp.asarray(x) for x in (v, a, nv, na, start, mask, audio, noise.video, noise.audio)))

    def _run(self, model: Transformer, inputs: ClipInputs, sigmas: np.ndarray, stage: ClipStage):
        return denoise_clip(model.graphdef, model.params, inputs, jnp.asarray(sigmas, jnp.float32), stage,
                            self.execution)

    def decode(self, request: ClipRequest, video: jnp.ndarray, audio: jnp.ndarray) -> ClipResult:
        """Latents `[1, F, h, w, C]` / `[1, Fa, Ca]` → a `ClipResult` (tiled video decode, audio VAE + vocoder)."""
        v, a = np.asarray(video, np.float32)[0], np.asarray(audio, np.float32)[0]
        wave = self.codecs.audio.decode(a)
        return ClipResult(v, a, self.codecs.video.decode(v), wave, int(self.codecs.audio.output_sample_rate),
                          request.fps)

    # ----------------------------------------------------------------------------------------------- pipelines
    def one_stage(self, request: ClipRequest, *, steps: int = LTX23_STEPS, video: GuidanceParams = LTX23_VIDEO,
                  audio: GuidanceParams = LTX23_AUDIO, noise: StageNoise | None = None) -> ClipResult:
        """T2V / I2V at the target size in one guided stage (`TI2VidOneStagePipeline`)."""
        _check_request(request, 32, self.codecs.video.temporal_scale)
        contexts = self.contexts(request)
        size = (request.height, request.width)
        noise = noise or self.draw_noise(request, 0, size)
        inputs = self._stage_inputs(request, contexts, noise, None, None, size)
        stage = ClipStage(request.fps, 1.0, video, audio)
        v, a = self._run(self.transformer, inputs, ltx2_sigmas(steps), stage)
        return self.decode(request, v, a)

    def two_stage(self, request: ClipRequest, *, steps: int = LTX23_STEPS, video: GuidanceParams = LTX23_VIDEO,
                  audio: GuidanceParams = LTX23_AUDIO, noise: tuple[StageNoise, StageNoise] | None = None) -> ClipResult:
        """Guided half-size stage 1, ×2 upsample, distilled-LoRA refine (`TI2VidTwoStagesPipeline`)."""
        return self._staged(request, ltx2_sigmas(steps), ClipStage(request.fps, 1.0, video, audio), noise)

    def distilled(self, request: ClipRequest, *, noise: tuple[StageNoise, StageNoise] | None = None) -> ClipResult:
        """The distilled checkpoint: 8 unguided steps at half size, ×2 upsample, 3 refine steps (`DistilledPipeline`)."""
        return self._staged(request, distilled_sigmas(1), ClipStage(request.fps), noise)

    def _staged(self, request: ClipRequest, sigmas: np.ndarray, stage1: ClipStage,
                noise: tuple[StageNoise, StageNoise] | None) -> ClipResult:
        _check_request(request, 32, self.codecs.video.temporal_scale)
        self._need_refiner()
        contexts = self.contexts(request)
        small, full = self.stage1_size(request), (request.height, request.width)
        first, second = noise or (self.draw_noise(request, 0, small), self.draw_noise(request, 1, full))
        v1, a1 = self._run(self.transformer, self._stage_inputs(request, contexts, first, None, None, small), sigmas,
                           stage1)
        v2, a2 = self.refine(request, contexts, np.asarray(v1, np.float32), np.asarray(a1, np.float32), second)
        return self.decode(request, v2, a2)

    def _need_refiner(self) -> None:
        if self.refiner is None:
            raise PipelineInputError("refiner: the two-stage pipelines need the stage-2 weights (the model with the "
                                     "distilled LoRA merged, or the distilled model)")

    def refine(self, request: ClipRequest, contexts: tuple[np.ndarray, ...], video: np.ndarray, audio: np.ndarray,
               noise: StageNoise | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Stage 2 of the two-stage pipelines at the request's size: the first stage's video `[1, F, h1, w1, C]`
        through the ×2 upsampler (cropped to the target grid), re-noised with the stage-2 σ₀ together with its audio
        `[1, Fa, Ca]`, 3 unguided steps with the refiner; an I2V request keeps its first frame, re-encoded at the
        target size. contexts: (video `[1, S, Dv]`, audio `[1, S, Da]`, …) — only the prompt's are read.
        Returns (video `[1, F, h, w, C]`, audio `[1, Fa, Ca]`) float32."""
        self._need_refiner()
        full = (request.height, request.width)
        (f, h, w, _), _ = self.latent_shapes(request)
        if video.shape[1] != f:
            raise PipelineInputError(f"video: {video.shape[1]} latent frames, the request's {request.frames} frames "
                                     f"need {f}")
        upsampled = self.codecs.video.upsample(np.asarray(video, np.float32)[0])[None, :, :h, :w]
        if noise is None:
            kv, ka = jax.random.split(jax.random.fold_in(jax.random.key(request.seed), 1))
            noise = StageNoise(np.asarray(jax.random.normal(kv, upsampled.shape)),
                               np.asarray(jax.random.normal(ka, audio.shape)))
        refine = distilled_sigmas(2)
        contexts = (*contexts[:2], *contexts[:2])  # the refine stage is unguided: the negative prompt is never read
        inputs = self._stage_inputs(request, contexts, noise, upsampled, np.asarray(audio, np.float32), full)
        v2, a2 = self._run(self.refiner, inputs, refine, ClipStage(request.fps, float(refine[0])))
        return np.asarray(v2, np.float32), np.asarray(a2, np.float32)
