"""Our LTX-2.3 pipelines against ltx-pipelines 1.0.0's own pipeline classes on a tiny random full stack.

The stack (transformer, video VAE, audio VAE, vocoder + BWE, text connectors, Gemma-3, ×2 upsampler) is written by
ltx-core's builders in the official layouts; ours loads it through the loaders users run (`convert`, the `ltx23`
codecs). The reference pipelines run unchanged in float32 and float64 (`reference/run_pipelines.py`), and their
noise draws are injected into ours. Every output — final video and audio latents, decoded frames, waveform — must
meet the project's parity criterion (`parity_criterion`: within 2e-5 of the output's scale of the float64 run, or
within 4× the reference's own float32 error), and our frames rounded as the pipelines round them must be within
one level of theirs.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.lora_files import linear_weights, lora_targets, write_lora
from helpers.ltx23_stack import PIPELINE_GEMMA, build_pipeline_stack
from PIL import Image

from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.sampling import GuidanceParams
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.pipeline.ltx23_pipelines import ClipRequest, Ltx23Pipelines, StageNoise, transformer_from_tree

PROMPT, NEGATIVE = "a meadow in bright light pip walks right", "blurry low quality"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_stack")
    path, gemma, upsampler, request = build_pipeline_stack(str(root))
    yy, xx = np.mgrid[0:80, 0:150]  # an aspect ratio the clip does not have: resize + centre crop
    image = np.stack([(xx * 1.7) % 256, (yy * 3.1) % 256, ((xx + yy) * 2.3) % 256], -1).astype(np.uint8)
    Image.fromarray(image).save(root / "first.png")
    lora = write_lora(root / "distilled-lora.safetensors", lora_targets(linear_weights(path)), 3)
    return {"path": path, "gemma": gemma, "upsampler": upsampler, "request": request, "image": str(root / "first.png"),
            "root": root, "lora": lora}


LORA_STRENGTH = 0.8


@pytest.fixture(scope="module")
def ours(stack):
    """Our pipelines on the converted stack: the base model, and as refiner the base with the LoRA merged (fp32
    build of the bf16 file, as the reference's float32 run builds it)."""
    from unityshots_jax.checkpoint.ltx_convert import convert, load_params, params_as
    from unityshots_jax.checkpoint.ltx_lora import merge_lora, read_lora
    from unityshots_jax.codecs.base import build_codecs

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UNITYSHOTS_TEXT_CACHE", "")
        codecs = build_codecs("ltx23", stack["request"])
    converted = str(stack["root"] / "converted")
    convert(stack["path"], converted, progress=False)
    cfg, tree = load_params(converted)
    base = params_as(tree, "float32")
    refined = merge_lora(base, read_lora(stack["lora"], cfg), LORA_STRENGTH)
    models = {name: transformer_from_tree(cfg, t) for name, t in (("base", base), ("refined", refined))}
    execution = ExecutionConfig(dtype="float32")
    return {"dev": Ltx23Pipelines(codecs, models["base"], models["refined"], execution=execution),
            "distilled": Ltx23Pipelines(codecs, models["base"], models["base"], execution=execution)}


def _reference(kind, build, call, stack):
    from unityshots_jax.reference.run_pipelines import run_pipeline

    kw = {"gemma_dir": stack["gemma"], "gemma_shape": PIPELINE_GEMMA}
    r32 = run_pipeline(kind, build, call, **kw)
    r64 = run_pipeline(kind, build, call, dtype="float64", replay=r32.noise, **kw)
    return r32, r64


def _as_ours(run, video_shape, audio_frames):
    """The reference's latents in our layouts: video `[C, F, h, w]` → `[F, h, w, C]`, audio `[C, Fa, mel]` →
    `[Fa, C·mel]`."""
    video = run.video_latent[0].transpose(1, 2, 3, 0)
    audio = run.audio_latent[0].transpose(1, 0, 2).reshape(audio_frames, -1)
    assert video.shape == tuple(video_shape)
    return video, audio


def _noise(run, first: int, pipelines, request, size=None):
    (f, h, w, c), (_fa, _) = pipelines.latent_shapes(request, size)
    video, audio = run.noise[first], run.noise[first + 1]
    return StageNoise(video.reshape(1, f, h, w, c).astype(np.float32), audio.astype(np.float32))


def _check_outputs(result, r32, r64, pipelines, request):
    (f, h, w, c), (fa, _) = pipelines.latent_shapes(request)
    (v32, a32), (v64, a64) = _as_ours(r32, (f, h, w, c), fa), _as_ours(r64, (f, h, w, c), fa)
    for verdict in (assert_parity("video latent", result.video_latent, v32, v64),
                    assert_parity("audio latent", result.audio_latent, a32, a64),
                    assert_parity("decoded frames", result.frames, r32.frames, r64.frames),
                    assert_parity("waveform", result.audio, r32.wave.T, r64.wave.T)):
        print(verdict)  # the figures of experiments/RESULTS.md (pytest -s)
    assert result.sample_rate == r32.sample_rate == 48000
    ours_uint8 = (np.clip(result.frames, 0, 1) * 255.0).astype(np.uint8)  # the pipelines' rounding
    assert np.abs(ours_uint8.astype(int) - r32.frames_uint8.astype(int)).max() <= 1


def _guider(cfg: float, blocks: list[int]):
    from unityshots_jax.reference import torchaudio_compat

    torchaudio_compat.install()
    from ltx_core.components.guiders import MultiModalGuiderParams

    return MultiModalGuiderParams(cfg_scale=cfg, stg_scale=1.0, rescale_scale=0.7, modality_scale=3.0,
                                  stg_blocks=blocks)


@pytest.mark.parametrize("i2v", [False, True], ids=["t2v", "i2v"])
def test_one_stage_matches_ti2vid_one_stage_pipeline(stack, ours, i2v):
    """`TI2VidOneStagePipeline` with LTX-2.3's guidance (video cfg 3, audio cfg 7, STG 1 on one block, rescale 0.7,
    modality 3: four transformer calls per step), 3 steps, 17 frames at 64 × 96; I2V from an 80 × 150 image."""
    from ltx_pipelines.utils.args import ImageConditioningInput

    images = [ImageConditioningInput(stack["image"], 0, 1.0, 33)] if i2v else []
    call = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": 10, "height": 64, "width": 96, "num_frames": 17,
            "frame_rate": 24.0, "num_inference_steps": 3, "video_guider_params": _guider(3.0, [1]),
            "audio_guider_params": _guider(7.0, [1]), "images": images}
    build = {"checkpoint_path": stack["path"], "gemma_root": stack["gemma"], "loras": []}
    r32, r64 = _reference("one_stage", build, call, stack)

    request = ClipRequest(PROMPT, 64, 96, 17, negative_prompt=NEGATIVE, image=stack["image"] if i2v else None)
    params = {"stg": 1.0, "rescale": 0.7, "modality": 3.0, "stg_blocks": (1,)}
    pipelines = ours["dev"]
    result = pipelines.one_stage(request, steps=3, video=GuidanceParams(cfg=3.0, **params),
                                 audio=GuidanceParams(cfg=7.0, **params), noise=_noise(r32, 0, pipelines, request))
    _check_outputs(result, r32, r64, pipelines, request)
    if i2v:  # the first latent frame is the encoded image, untouched by denoising
        image = pipelines.first_frame(request, 64, 96)
        np.testing.assert_array_equal(result.video_latent[0], image[0])


def _lora_spec(stack):
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP, LoraPathStrengthAndSDOps

    return [LoraPathStrengthAndSDOps(stack["lora"], LORA_STRENGTH, LTXV_LORA_COMFY_RENAMING_MAP)]


def test_two_stage_matches_ti2vid_two_stages_pipeline(stack, ours):
    """`TI2VidTwoStagesPipeline`, I2V at 128 × 192: guided stage 1 at 64 × 96 (3 steps), ×2 upsampler, stage 2 with
    the distilled LoRA (strength 0.8) merged, re-noised at σ₀ = 0.909375, 3 steps; the image re-encoded per stage."""
    from ltx_pipelines.utils.args import ImageConditioningInput

    _guider(3.0, [0])  # installs the torchaudio shim before ltx-core's loaders are imported
    call = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": 3, "height": 128, "width": 192, "num_frames": 17,
            "frame_rate": 24.0, "num_inference_steps": 3, "video_guider_params": _guider(3.0, [0]),
            "audio_guider_params": _guider(7.0, [0]), "images": [ImageConditioningInput(stack["image"], 0, 1.0, 33)]}
    build = {"checkpoint_path": stack["path"], "gemma_root": stack["gemma"], "loras": [],
             "spatial_upsampler_path": stack["upsampler"], "distilled_lora": _lora_spec(stack)}
    r32, r64 = _reference("two_stages", build, call, stack)

    pipelines = ours["dev"]
    request = ClipRequest(PROMPT, 128, 192, 17, negative_prompt=NEGATIVE, image=stack["image"])
    params = {"stg": 1.0, "rescale": 0.7, "modality": 3.0, "stg_blocks": (0,)}
    noise = (_noise(r32, 0, pipelines, request, (64, 96)), _noise(r32, 2, pipelines, request))
    result = pipelines.two_stage(request, steps=3, video=GuidanceParams(cfg=3.0, **params),
                                 audio=GuidanceParams(cfg=7.0, **params), noise=noise)
    _check_outputs(result, r32, r64, pipelines, request)


def test_distilled_matches_distilled_pipeline(stack, ours):
    """`DistilledPipeline`, T2V at 128 × 192: 8 unguided steps on the distilled sigmas at 64 × 96, ×2 upsampler,
    3 refine steps with the same weights."""
    _guider(1.0, [])
    call = {"prompt": PROMPT, "seed": 4, "height": 128, "width": 192, "num_frames": 17, "frame_rate": 24.0, "images": []}
    build = {"distilled_checkpoint_path": stack["path"], "gemma_root": stack["gemma"], "loras": [],
             "spatial_upsampler_path": stack["upsampler"]}
    r32, r64 = _reference("distilled", build, call, stack)

    pipelines = ours["distilled"]
    request = ClipRequest(PROMPT, 128, 192, 17)
    noise = (_noise(r32, 0, pipelines, request, (64, 96)), _noise(r32, 2, pipelines, request))
    _check_outputs(pipelines.distilled(request, noise=noise), r32, r64, pipelines, request)


def test_two_stage_size_that_is_not_a_multiple_of_64(ours):
    """1376 × 768 is 43 × 24 latents: stage 1 runs at 704 × 384 (22 × 12) and the upsampled 44 × 24 latent is
    cropped to 43 × 24 (the reference pipelines refuse such sizes). Run at 96 × 160 (3 × 5 latents): stage 1 at
    64 × 96 (2 × 3), upsampled to 4 × 6, cropped to 3 × 5."""
    pipelines = ours["dev"]
    assert pipelines.stage1_size(ClipRequest(PROMPT, 768, 1376, 121)) == (384, 704)
    request = ClipRequest(PROMPT, 96, 160, 9)
    assert pipelines.stage1_size(request) == (64, 96)
    result = pipelines.two_stage(request, steps=2, video=GuidanceParams(cfg=3.0), audio=GuidanceParams(cfg=7.0))
    assert result.video_latent.shape == (2, 3, 5, 128)
    assert result.frames.shape == (9, 96, 160, 3) and np.isfinite(result.frames).all()
    assert result.audio.shape[1] == 2 and np.isfinite(result.audio).all()
