"""What a real LTX-2.3 story run will do, resolved and checked before any weights are read (`Ltx23Plan`).

From the generate config (`configs/generate_ltx23.py`, flags applied) and the checkpoint path: which pipeline and
memory mode run, which files are read (each checked to exist, missing ones asked for by name), the guidance of each
stream, the frame size (and the first stage's, for the two-stage pipelines) and the dtype. `story_shape` sizes the
story model for one story: its shots, the longest shot's latent frames of both streams, the latent grid.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import ml_collections

from unityshots_jax.ltx.sampling import GuidanceParams, joint_skip_step
from unityshots_jax.story.story_config import StoryConfig

PIPELINES = ("one-stage", "two-stage", "distilled")
MEMORY_MODES = ("trained", "zero-shot", "none")
MEMORY_SLOTS = {"trained": "both", "zero-shot": "both", "none": "none"}
MEMORY_WORDS = {
    "trained": "trained memory (long-term + short-term slots, the checkpoint's memory group)",
    "zero-shot": "zero-shot memory (long-term + short-term slots, memory group at its neutral initialisation, "
                 "untrained)",
    "none": "no memory (every shot generated on its own: the LTX-2.3 no-memory baseline)",
}


class PlanError(ValueError):
    """A generate configuration that cannot run; the message names the flag / config key or file."""


@dataclasses.dataclass(frozen=True)
class Ltx23Plan:
    """A checked LTX-2.3 story run. checkpoint: a story model trained here (`story_model` True) or a directory
    converted from the official file; weights: the file or converted directory with the VAEs, vocoder and text
    connectors; text_encoder: the Gemma-3 directory; upsampler / distilled_lora: None when the pipeline needs none."""

    pipeline: str
    memory: str
    checkpoint: str
    story_model: bool
    weights: str
    text_encoder: str
    upsampler: str | None
    distilled_lora: str | None
    lora_strength: float
    height: int
    width: int
    steps: int
    dtype: str
    video: GuidanceParams
    audio: GuidanceParams
    negative_prompt: str
    execution: dict
    mesh: dict | None = dataclasses.field(default_factory=lambda: {"fsdp": -1})  # None: one device, unsharded
    rules: tuple = ()

    @property
    def stage1_size(self) -> tuple[int, int]:
        """(height, width) px of the story model's run: the target for one-stage, else half of it rounded up to
        whole latents (see `Ltx23Pipelines.stage1_size`)."""
        if self.pipeline == "one-stage":
            return self.height, self.width
        return tuple(-(-s // 64) * 32 for s in (self.height, self.width))

    def describe(self) -> str:
        """One line for the CLI: pipeline, memory mode in words, size."""
        return f"LTX-2.3 {self.pipeline} at {self.width}x{self.height}, {MEMORY_WORDS[self.memory]}"


def _is_story_model(path: str) -> bool:
    """A packaged story model (model.safetensors or a directory holding one) or a training workdir."""
    from unityshots_jax.story.story_checkpoint import FILENAME

    workdir = os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(os.path.join(path, "checkpoints"))
    return os.path.isfile(path) or os.path.isfile(os.path.join(path, FILENAME)) or workdir


def refuse_official_file(path: str) -> None:
    """PlanError when `path` is an official LTX single file (it must be converted before generating from it)."""
    if not (os.path.isfile(path) and path.endswith(".safetensors")):
        return
    from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile
    from unityshots_jax.story.story_checkpoint import FORMAT

    try:
        metadata = SafetensorsFile(path).metadata
    except CheckpointError:
        return  # not readable here: the loader names the problem
    if metadata.get("format") != FORMAT and "config" in metadata:
        raise PlanError(f"--checkpoint: {path} is an official LTX checkpoint file; convert it once "
                        f"(unityshots convert {path} DIR) and pass --checkpoint DIR")


def _is_converted_ltx(path: str) -> bool:
    cfg = os.path.join(path, "config.json")
    if not (os.path.isdir(os.path.join(path, "params")) and os.path.isfile(cfg)):
        return False
    try:
        with open(cfg) as f:
            return "ltx_config" in json.load(f)
    except (OSError, json.JSONDecodeError):
        return False


def _file(value: str, key: str, flag: str, what: str, *, directory: bool = False) -> str:
    if not value:
        raise PlanError(f"{flag} (config {key}) is required: give {what}")
    ok = os.path.isdir(value) if directory else os.path.exists(value)
    if not ok:
        raise PlanError(f"{flag} (config {key}): {value} does not exist" + (" or is not a directory" if directory else ""))
    return os.path.abspath(value)


def _guidance(node: ml_collections.ConfigDict, key: str, num_layers: int) -> GuidanceParams:
    try:
        params = GuidanceParams(cfg=float(node.cfg), stg=float(node.stg), modality=float(node.modality),
                                rescale=float(node.rescale), stg_blocks=tuple(int(b) for b in node.stg_blocks),
                                skip_step=int(node.skip_step))
    except (TypeError, ValueError, AttributeError) as err:
        raise PlanError(f"config {key}: {err}") from None
    for name, value, lo in (("cfg", params.cfg, 1.0), ("modality", params.modality, 1.0), ("stg", params.stg, 0.0),
                            ("rescale", params.rescale, 0.0)):
        if not math.isfinite(value) or value < lo:
            raise PlanError(f"config {key}.{name}: {value} (expected ≥ {lo:g})")
    bad = [b for b in params.stg_blocks if not 0 <= b < num_layers]
    if params.needs_perturbed and bad:
        raise PlanError(f"config {key}.stg_blocks: block {bad[0]} is outside the model's {num_layers} blocks "
                        f"(0..{num_layers - 1})")
    return params


def make_plan(cfg: ml_collections.ConfigDict, checkpoint: str, num_layers: int) -> Ltx23Plan:
    """Resolve and check a generate config for `checkpoint`; `num_layers` of its transformer (for STG blocks)."""
    if cfg.pipeline not in PIPELINES:
        raise PlanError(f"--pipeline (config pipeline): {cfg.pipeline!r}; expected one of {list(PIPELINES)}")
    story_model = _is_story_model(checkpoint) and not _is_converted_ltx(checkpoint)
    if not story_model and not _is_converted_ltx(checkpoint):
        raise PlanError(f"--checkpoint: {checkpoint} is neither a story model (model.safetensors) nor a directory "
                        "converted from the official LTX-2.3 file (run: unityshots convert ltx-2.3-22b-dev.safetensors "
                        "DIR)")
    memory = cfg.memory or ("trained" if story_model else "none")
    if memory not in MEMORY_MODES:
        raise PlanError(f"--memory (config memory): {memory!r}; expected one of {list(MEMORY_MODES)}")
    if memory == "trained" and not story_model:
        raise PlanError(f"--memory trained: {checkpoint} is the official LTX-2.3 model, whose memory group is "
                        "untrained; use --memory zero-shot or --memory none, or a story model trained from it")
    files = cfg.files
    weights = _file(files.weights or (checkpoint if not story_model else ""), "files.weights", "--weights",
                    "the official LTX-2.3 .safetensors (it holds the VAEs, vocoder and text connectors)")
    text_encoder = _file(files.text_encoder, "files.text_encoder", "--text-encoder", "the Gemma-3 12B directory "
                         "(google/gemma-3-12b-it-qat-q4_0-unquantized on Hugging Face)", directory=True)
    upsampler = lora = None
    if cfg.pipeline != "one-stage":
        upsampler = _file(files.upsampler, "files.upsampler", "--upsampler",
                          "ltx-2.3-spatial-upscaler-x2 .safetensors (the two-stage pipelines upsample stage 1 ×2)")
    if cfg.pipeline == "two-stage":
        lora = _file(files.distilled_lora, "files.distilled_lora", "--distilled-lora",
                     "ltx-2.3-22b-distilled-lora .safetensors (stage 2 refines with it)")
    for key in ("height", "width"):
        size = cfg[key]
        if not isinstance(size, int) or size < 32 or size % 32:
            raise PlanError(f"config {key}: {size} px is not a positive multiple of 32 (LTX-2.3 latents are 32 px)")
    if not 1 <= int(cfg.steps) <= 1000:
        raise PlanError(f"--steps (config steps): {cfg.steps}; expected 1 to 1000")
    if cfg.dtype not in ("float32", "bfloat16"):
        raise PlanError(f"config dtype: {cfg.dtype!r}; expected float32 or bfloat16")
    video = _guidance(cfg.guidance.video, "guidance.video", num_layers)
    audio = _guidance(cfg.guidance.audio, "guidance.audio", num_layers)
    try:
        joint_skip_step(video, audio)
    except ValueError as err:
        raise PlanError(f"config guidance: {err}") from None
    return Ltx23Plan(cfg.pipeline, memory, os.path.abspath(checkpoint), story_model, weights, text_encoder, upsampler,
                     lora, float(cfg.lora_strength), int(cfg.height), int(cfg.width), int(cfg.steps), cfg.dtype, video,
                     audio, cfg.negative_prompt, dict(cfg.execution), _mesh(cfg), _rules(cfg))


def _mesh(cfg: ml_collections.ConfigDict) -> dict:
    from unityshots_jax.sharding import MESH_AXES

    mesh = dict(cfg.get("mesh", {"fsdp": -1}))
    unknown = sorted(set(mesh) - set(MESH_AXES))
    if unknown:
        raise PlanError(f"config mesh.{unknown[0]}: not a mesh axis ({list(MESH_AXES)})")
    return mesh


def _rules(cfg: ml_collections.ConfigDict) -> tuple:
    from unityshots_jax.sharding import parse_rules

    try:
        return tuple(parse_rules(cfg.get("sharding_rules", ()), "config sharding_rules"))
    except ValueError as err:
        raise PlanError(str(err)) from None


def story_shape(base: StoryConfig, shots: int, durations: list[float], size: tuple[int, int], *,
                fps: float, temporal_scale: int, spatial_scale: int, audio_rate: float,
                causal_first_frame: bool, causal_audio: bool) -> StoryConfig:
    """`base` sized for one story: `shots` shots, the longest shot's latent frames of both streams, the latent grid
    of `size` (height, width) px. A shot of d seconds has d·fps/T latent frames (+1 for a causal VAE's first frame,
    which stands for one pixel frame) and ceil(d · audio_rate) audio latents (+1 for a causal audio VAE, which decodes
    a few mel frames fewer than its latents span); see `story_conditioning.shot_lengths`."""
    video = max(round(d * fps / temporal_scale) for d in durations) + int(causal_first_frame)
    audio = max(math.ceil(d * audio_rate - 1e-6) for d in durations) + int(causal_audio)
    video = max(video, base.stm_frames)
    limit = max(base.frame_limit, video + base.ref_image_frames + 2 * base.stm_frames)
    return dataclasses.replace(base, max_shots=shots, video_frames=video, audio_frames=audio, frame_limit=limit,
                               height=size[0] // spatial_scale, width=size[1] // spatial_scale, fps=fps,
                               temporal_scale=temporal_scale, spatial_scale=spatial_scale)
