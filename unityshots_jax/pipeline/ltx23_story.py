"""A story on the real LTX-2.3 stack: story file → per-shot text, references and memory on the 22B → one mp4.

`run_ltx23_story(plan, prompt, ...)`:
1. the `ltx23` codecs (Gemma-3 text path, video VAE (+ ×2 upsampler), audio VAE + vocoder) from the plan's files;
2. the story model sized for this story (`ltx23_plan.story_shape`): a story model trained here, or the official
   LTX-2.3 backbone with the memory group at its neutral initialisation; `memory` "none" hides both memory slots;
3. the shots through `generate_story` (one scan over shots carrying the memory, a scan over steps inside) with
   LTX-2.3's multi-modal guidance — at the target size (one-stage) or at the first stage's size;
4. two-stage / distilled: every shot refined on its own at the target size (`Ltx23Pipelines.refine`: ×2 upsample,
   re-noise at σ₀ = 0.909375, 3 unguided steps with the distilled-LoRA backbone or the distilled model; an I2V
   shot keeps its first frame, re-encoded at the target size);
5. decoded shot by shot (tiled video decode; audio VAE + vocoder as one stream) into `StoryMedia` with exact
   per-shot durations.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.codecs.base import CodecBundle, CodecRequest, build_codecs
from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.sampling import GuidanceParams, distilled_sigmas
from unityshots_jax.pipeline.ltx23_pipelines import (
    DEFAULT_NEGATIVE_PROMPT,
    ClipRequest,
    Ltx23Pipelines,
    Transformer,
    transformer_from_tree,
)  # fmt: skip
from unityshots_jax.pipeline.ltx23_plan import MEMORY_SLOTS, Ltx23Plan, PlanError, story_shape
from unityshots_jax.story.story_checkpoint import LoadedStoryModel
from unityshots_jax.story.story_config import StoryConfig

LTX23_SHIFT_TOKENS = 4096  # the pipelines pass no latent to LTX2Scheduler: the shift of 4096 tokens
# LTX-2.3's media rates (checked against the codecs by `StoryGenerator`): 24 fps, 8 frames and 32 px per latent,
# 25 audio latents per second; both VAEs are causal (T·(n−1)+1 frames, 4n − 3 mel frames from n latents).
LTX23_MEDIA = {"fps": 24.0, "temporal_scale": 8, "spatial_scale": 32, "audio_rate": 25.0, "causal_first_frame": True,
               "causal_audio": True}


def ltx23_codecs(plan: Ltx23Plan, grid: tuple[int, int, int, int], video_context_dim: int, audio_context_dim: int,
                 text_tokens: int = 1024) -> CodecBundle:
    """The `ltx23` bundle for the plan's files; `grid` (frames, h, w, C) is the story model's latent grid."""
    request = CodecRequest(grid, video_context_dim, audio_context_dim, text_tokens, weights=plan.weights,
                           text_encoder_dir=plan.text_encoder, dtype=plan.dtype, upsampler=plan.upsampler)
    return build_codecs("ltx23", request)


def _cast(tree, dtype: str):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.dtype(dtype)) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                        tree)


def _story_fields(story: StoryConfig) -> dict:
    keys = ("max_shots", "video_frames", "audio_frames", "height", "width", "frame_limit", "memory_slots", "fps",
            "temporal_scale", "spatial_scale")
    return {k: getattr(story, k) for k in keys}


def load_story_for_plan(plan: Ltx23Plan, story: StoryConfig) -> LoadedStoryModel:
    """The story model of `plan` with the shapes of `story` (shapes of parameters never depend on them), parameters
    in the plan's dtype. Official weights: the backbone from the converted directory, the memory group freshly
    initialised (cut embeddings zero, the gate's refinement ρ ≈ 0.99: the rule gate)."""
    from unityshots_jax.checkpoint.ltx_convert import load_params, params_as, read_converted_config
    from unityshots_jax.codecs.base import codec_name
    from unityshots_jax.story.story_model import MemoryParams, abstract_story_model
    from unityshots_jax.train.package import load_trained_model

    story = dataclasses.replace(story, memory_slots=MEMORY_SLOTS[plan.memory])
    if plan.story_model:
        model = load_trained_model(plan.checkpoint, overrides=_story_fields(story))
        name = codec_name(model.meta, f"{plan.checkpoint}: metadata")
        if name != "ltx23":
            raise PlanError(f"--checkpoint: {plan.checkpoint} was trained with the {name!r} codecs, not LTX-2.3's "
                            "(ltx23); generate it without --config configs/generate_ltx23.py")
        return dataclasses.replace(model, params=_cast(model.params, plan.dtype))
    meta, ltx = read_converted_config(plan.checkpoint)
    _, tree = load_params(plan.checkpoint)
    with nnx.use_eager_sharding(False):
        memory = nnx.to_pure_dict(nnx.state(MemoryParams(ltx, story, nnx.Rngs(0))))
    graphdef, state = nnx.split(abstract_story_model(ltx, story))
    nnx.replace_by_pure_dict(state, {"backbone": params_as(tree, plan.dtype), "memory": _cast(memory, plan.dtype)})
    config = {"model_type": ltx.model_type, "transformer": meta.get("checkpoint_config", {}).get("transformer", {}),
              "story": dataclasses.asdict(story)}
    info = {"codec": "ltx23", "shift_tokens": LTX23_SHIFT_TOKENS, "memory": plan.memory}
    return LoadedStoryModel(ltx, story, graphdef, state, config, info, plan.checkpoint)


def read_plan_lora(plan: Ltx23Plan):
    """The distilled LoRA of a two-stage plan, read and checked against the checkpoint's transformer (a LoRA for
    another model is refused naming the file and key), or None."""
    if plan.distilled_lora is None:
        return None
    from unityshots_jax.checkpoint.ltx_lora import read_lora

    return read_lora(plan.distilled_lora, checkpoint_ltx(plan.checkpoint))


def refiner_for_plan(plan: Ltx23Plan, model: LoadedStoryModel, lora=None) -> Transformer | None:
    """The stage-2 transformer: the story model's backbone with the distilled LoRA (`lora`, from `read_plan_lora`)
    merged (two-stage), the backbone itself (distilled), or None (one-stage)."""
    if plan.pipeline == "one-stage":
        return None
    from unityshots_jax.checkpoint.ltx_lora import merge_lora

    backbone = nnx.to_pure_dict(model.params)["backbone"]
    if plan.pipeline == "two-stage":
        backbone = merge_lora(backbone, lora if lora is not None else read_plan_lora(plan), plan.lora_strength)
    return transformer_from_tree(model.ltx, backbone)


def refine_shots(pipelines: Ltx23Pipelines, plan: Ltx23Plan, prompt, story, video: np.ndarray, audio: np.ndarray,
                 *, seed: int, fps: float, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Every shot at the target size: video `[shots, F, h1, w1, C]` (stage 1) → `[shots, F, h, w, C]`, audio
    `[shots, Fa, Ca]` refined with it. Shot i's stage-2 noise comes from `seed` and i."""
    out_v, out_a = [], []
    for i, shot in enumerate(prompt.shots):
        n, na = int(story.n_frames[i]), int(story.n_audio[i])
        frames = pipelines.codecs.video.frame_count(n)
        request = ClipRequest(story.texts[i], plan.height, plan.width, frames, fps=fps, seed=seed + 1 + i,
                              image=str(shot.first_frame) if shot.first_frame is not None else None)
        contexts = (story.video_context[i][None], story.audio_context[i][None])
        v, a = pipelines.refine(request, contexts, video[i, :n][None], audio[i, :na][None])
        full_v = np.zeros((video.shape[1], *v.shape[2:]), np.float32)
        full_v[:n] = v[0]
        full_a = np.zeros_like(audio[i])
        full_a[:na] = a[0]
        out_v.append(full_v)
        out_a.append(full_a)
        if progress is not None:
            progress()
    return np.stack(out_v), np.stack(out_a)


def execution_for_plan(plan: Ltx23Plan) -> ExecutionConfig:
    return ExecutionConfig(dtype=plan.dtype, **plan.execution)


def checkpoint_ltx(path: str):
    """The `LTXConfig` of a converted LTX directory (its config.json) or of a story model."""
    from unityshots_jax.checkpoint.ltx_convert import read_converted_config
    from unityshots_jax.pipeline.ltx23_plan import _is_converted_ltx, refuse_official_file

    refuse_official_file(path)
    if _is_converted_ltx(path):
        return read_converted_config(path)[1]
    from unityshots_jax.train.package import load_trained_model

    return load_trained_model(path).ltx


def checkpoint_shape(path: str) -> tuple[int, int, int]:
    """(transformer blocks, video latent channels, audio latent channels) of a converted LTX directory or a story
    model."""
    ltx = checkpoint_ltx(path)
    return ltx.num_layers, ltx.video.in_channels, ltx.audio.in_channels


@dataclasses.dataclass(frozen=True)
class Ltx23Story:
    """A generated story: the media, the prepared conditioning it came from, and the model's story config."""

    media: object
    story: object
    config: StoryConfig


def run_ltx23_story(plan: Ltx23Plan, prompt, *, seed: int, cut_strength: float | None = None,
                    progress: bool = False, base: StoryConfig | None = None, lora=None) -> Ltx23Story:
    """Generate `prompt` (a `StoryPrompt`) as `plan` says; see the module doc. lora: `read_plan_lora(plan)` when
    the caller checked it already."""
    from tqdm.auto import tqdm

    from unityshots_jax.pipeline.generate import StoryGenerator
    from unityshots_jax.pipeline.story_conditioning import prepare_story

    ltx = checkpoint_ltx(plan.checkpoint)
    video_c, audio_c = ltx.video.in_channels, ltx.audio.in_channels
    if plan.story_model:
        from unityshots_jax.train.package import load_trained_model

        base = base or load_trained_model(plan.checkpoint).story
    base = base or StoryConfig(latent_channels=video_c, audio_channels=audio_c)
    h1, w1 = plan.stage1_size
    shape = story_shape(base, len(prompt.shots), [s.duration for s in prompt.shots], (h1, w1), **LTX23_MEDIA)
    # the codecs first: a component that does not fit (channels, widths, an upsampler for other latents) is refused
    # before the transformer's weights are read
    codecs = ltx23_codecs(plan, (shape.video_frames, shape.height, shape.width, video_c), ltx.video.context_dim,
                          ltx.audio.context_dim, shape.text_tokens)
    model = load_story_for_plan(plan, shape)
    story = prepare_story(prompt, model.story, codecs, cut_strength=cut_strength)
    negative = plan.negative_prompt or prompt.negative_caption or DEFAULT_NEGATIVE_PROMPT
    execution = execution_for_plan(plan)
    mesh = None
    if plan.mesh is not None and len(jax.devices()) > 1:
        from unityshots_jax.sharding import build_mesh

        mesh = build_mesh(plan.mesh)
    distilled = plan.pipeline == "distilled"  # 8 unguided steps on the distilled sigmas, as `DistilledPipeline`
    guidance = (GuidanceParams(), GuidanceParams()) if distilled else (plan.video, plan.audio)
    generator = StoryGenerator(model, execution, codecs=codecs, stream_guidance=guidance, negative_prompt=negative,
                               mesh=mesh, rules=plan.rules, schedule="distilled" if distilled else "ltx2")
    steps = len(distilled_sigmas(1)) - 1 if distilled else plan.steps
    video, audio = generator.latents([story], seed=seed, steps=steps, progress=progress)
    video, audio = video[:, 0], audio[:, 0]
    refiner = refiner_for_plan(plan, model, lora)
    if refiner is not None:
        pipelines = Ltx23Pipelines(codecs, refiner, refiner, execution=execution)
        bar = tqdm(total=len(prompt.shots), desc="refine (shots)", unit="shot", disable=not progress)
        video, audio = refine_shots(pipelines, plan, prompt, story, video, audio, seed=seed, fps=codecs.video.fps,
                                    progress=lambda: bar.update(1))
        bar.close()
    media = generator.decode(story, video, audio, progress=progress)
    return Ltx23Story(media, story, model.story)


def peak_device_memory() -> str:
    """The devices' peak memory in use so far, or a sentence saying the backend does not report it (CPU)."""
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(stats["peak_bytes_in_use"])
    if not peaks:
        return f"peak device memory: not reported by the {jax.default_backend()} backend"
    return f"peak device memory: {max(peaks) / 2**30:.2f} GiB (largest of {len(peaks)} device(s))"
