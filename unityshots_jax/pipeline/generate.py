"""Generate stories with a trained story model and write them out: one continuous mp4 + a contact sheet.

`StoryGenerator(model)` compiles once per (batch, variant) and runs `generate_story` (a scan over shots carrying
the constant-size memory, a scan over denoising steps inside); `decode` turns a story's latents into frames
`[T, H, W, 3]` and a waveform (`[N]` mono or `[N, 2]` stereo) with each shot exactly as long as the story says.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from tqdm.auto import tqdm

from unityshots_jax.codecs.base import CodecBundle, codec_name
from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.ltx.sampler import SamplerConfig
from unityshots_jax.ltx.sampling import GuidanceParams
from unityshots_jax.pipeline.story_conditioning import PreparedStory, stack_stories
from unityshots_jax.story.shot_scan import SamplingConfig, StepCounter, generate_story
from unityshots_jax.story.story_checkpoint import LoadedStoryModel
from unityshots_jax.story.story_codecs import check_codecs_fit, story_codecs


@dataclasses.dataclass(frozen=True)
class StoryMedia:
    """One generated story: frames `[T, H, W, 3]` float in [0, 1] at `fps`, audio `[N]` float at
    `sample_rate`, and per shot its first frame index and frame count, its first audio sample and sample count, and
    the text it was conditioned on."""

    frames: np.ndarray
    audio: np.ndarray
    fps: float
    sample_rate: int
    shot_starts: tuple[int, ...]
    shot_frames: tuple[int, ...]
    audio_starts: tuple[int, ...]
    audio_samples: tuple[int, ...]
    texts: tuple[str, ...]

    def shot(self, i: int) -> np.ndarray:
        """Frames of shot i `[T_i, H, W, 3]`."""
        return self.frames[self.shot_starts[i] : self.shot_starts[i] + self.shot_frames[i]]

    def shot_audio(self, i: int) -> np.ndarray:
        """Audio of shot i `[N_i]`."""
        return self.audio[self.audio_starts[i] : self.audio_starts[i] + self.audio_samples[i]]


DEFAULT_GUIDANCE = 3.0  # classifier-free guidance scale for models trained with caption dropout


def default_guidance(meta: dict) -> float:
    """CFG scale a model supports: `DEFAULT_GUIDANCE` if it was trained with caption dropout, else 1 (none)."""
    return DEFAULT_GUIDANCE if float(meta.get("caption_dropout", 0.0)) > 0 else 1.0


class StoryGenerator:
    """A loaded story model with its codecs; `generate(stories, seed, steps)` returns one `StoryMedia` per story.

    guidance: classifier-free guidance scale on both streams (the negative prompt is the empty text); default
    `default_guidance(model.meta)`. Above 1 every step runs a second, unconditioned pass in the same batch.
    codecs: the model's codec bundle when it needs files (the `ltx23` bundle: checkpoint, Gemma-3 directory);
    default: built from the model's metadata (codecs that need no files, e.g. the toy world's).
    stream_guidance: (video, audio) `GuidanceParams` (LTX-2.3's multi-modal guidance: cfg, STG, modality, rescale),
    replacing `guidance`; negative_prompt: the text the unconditioned pass sees. mesh / rules: run sharded — the
    parameters placed by their logical axes (`rules`, e.g. FSDP over fsdp × context), the story batch over data,
    activations constrained by the same rules (video tokens over context); None: one device. schedule: "ltx2"
    (LTX2Scheduler, `steps` steps) or "distilled" (the distilled checkpoint's fixed 8 steps)."""

    def __init__(self, model: LoadedStoryModel, execution: ExecutionConfig | None = None, guidance: float | None = None,
                 *, codecs: CodecBundle | None = None,
                 stream_guidance: tuple[GuidanceParams, GuidanceParams] | None = None, negative_prompt: str = "",
                 mesh=None, rules=(), schedule: str = "ltx2"):
        self.model = model
        self.schedule = schedule
        self.mesh, self.rules = mesh, tuple(rules)
        if codecs is None:
            name = codec_name(model.meta, f"{model.path}: metadata")
            codecs = story_codecs(name, model.story, model.ltx.video.context_dim, model.ltx.audio.context_dim)
        else:
            check_codecs_fit(codecs, model.story)
        self.codecs: CodecBundle = codecs
        self.execution = execution or ExecutionConfig(dtype="float32")
        self.guidance = default_guidance(model.meta) if guidance is None else float(guidance)
        plain = GuidanceParams(cfg=self.guidance, stg=0.0, modality=1.0, rescale=0.0, stg_blocks=())
        self.stream_guidance = stream_guidance or (plain, plain)
        self.negative_prompt = negative_prompt
        self.steps = StepCounter()

    def sampling(self, steps: int, progress: bool = False) -> SamplingConfig:
        cfg = self.model.story
        video, audio = self.stream_guidance
        shift = cfg.shift_tokens(int(self.model.meta.get("shift_tokens", 0)))  # as in training
        sampler = SamplerConfig(schedule=self.schedule, steps=int(steps), shift_tokens=shift)
        return SamplingConfig(sampler, video=video, audio=audio, progress=self.steps if progress else None)

    def latents(self, stories: list[PreparedStory], *, seed: int, steps: int, progress: bool = False):
        """(video `[shots, B, F, h, w, C]`, audio `[shots, B, Fa, Ca]`) numpy latents for equal-length stories."""
        inputs = stack_stories(stories, self.model.story, self.codecs, self.negative_prompt)
        total = stories[0].num_shots * steps
        bar = tqdm(total=total, desc="generate (shots × steps)", unit="step", disable=not progress)
        sampling, key = self.sampling(steps, progress), jax.random.key(seed)
        with self.steps.listen(lambda: bar.update(1)):
            if self.mesh is None:
                video, audio, _ = generate_story(self.model.graphdef, self.model.params, inputs, key, sampling,
                                                 self.execution)
                video, audio = jax.device_get((video, audio))
            else:
                video, audio = self._sharded(inputs, key, sampling)
        bar.n = total
        bar.close()
        return np.asarray(video), np.asarray(audio)

    def _sharded(self, inputs, key, sampling) -> tuple[np.ndarray, np.ndarray]:
        """`generate_story` on `self.mesh`: parameters by their logical axes, stories over data when they divide;
        the outputs gathered to every process."""
        from flax import nnx
        from jax.experimental import multihost_utils
        from jax.sharding import NamedSharding, PartitionSpec

        from unityshots_jax.sharding import logical_to_spec, use_mesh
        from unityshots_jax.story.story_model import abstract_story_model
        from unityshots_jax.train.train_step import param_logical_axes

        mesh, rules = self.mesh, self.rules
        logical = param_logical_axes(abstract_story_model(self.model.ltx, self.model.story))
        shardings = jax.tree.map(lambda names: NamedSharding(mesh, logical_to_spec(names, rules)), logical,
                                 is_leaf=lambda x: isinstance(x, tuple))
        state = self.model.params
        pure = jax.device_put(nnx.to_pure_dict(state), shardings)
        params = jax.tree.map(lambda x: x, state)
        nnx.replace_by_pure_dict(params, pure)
        b = inputs.batch
        data = logical_to_spec(("activation_batch",), rules)
        if b % (mesh.shape["data"] * mesh.shape["fsdp"]):
            data = PartitionSpec(None)  # the stories cannot split over this mesh: replicate them

        def place(x):
            batched = x.ndim >= 2 and x.shape[1] == b
            return jax.device_put(x, NamedSharding(mesh, PartitionSpec(None, *data) if batched else PartitionSpec()))

        with use_mesh(mesh, rules):
            video, audio, _ = generate_story(self.model.graphdef, params, jax.tree.map(place, inputs), key, sampling,
                                             self.execution)
        return tuple(np.asarray(multihost_utils.process_allgather(x, tiled=True)) for x in (video, audio))

    def decode(self, story: PreparedStory, video: np.ndarray, audio: np.ndarray, progress: bool = False) -> StoryMedia:
        """One story's latents (video `[shots, F, h, w, C]`, audio `[shots, Fa, Ca]`) → `StoryMedia`, every shot
        exactly as long as the story says (round(duration · fps) frames, round(duration · sample rate) samples).

        Video is decoded shot by shot (a cut is a cut) and cut to the shot's frames (a causal VAE decodes
        T·(n−1)+1 frames from n latents: the shot has one latent more than its duration and drops the surplus
        frames); audio as one stream (the shots' latents joined), so it runs on without a seam, and each shot's
        samples are taken from where its latents start."""
        k = story.num_shots
        fps, rate = float(self.codecs.video.fps), int(self.codecs.audio.output_sample_rate)
        frames = []
        for i in tqdm(range(k), desc="decode (shots)", unit="shot", disable=not progress):
            shot = self.codecs.video.decode(video[i, : story.n_frames[i]])
            want = round(story.durations[i] * fps)
            if len(shot) < want:
                raise ValueError(f"shots[{i}]: {len(shot)} frames decoded, its duration needs {want}")
            frames.append(shot[:want])
        wave = self.codecs.audio.decode(np.concatenate([audio[i, : story.n_audio[i]] for i in range(k)]))
        wave = wave[:, 0] if wave.shape[1] == 1 else wave  # mono `[N]`, or `[N, 2]` stereo (LTX-2.3: 48 kHz)
        per_latent = rate / self.codecs.audio.latent_rate
        latent_starts = np.cumsum([0, *story.n_audio])[:-1]
        pieces = [wave[round(s * per_latent):][: round(d * rate)] for s, d in zip(latent_starts, story.durations)]
        samples = tuple(len(p) for p in pieces)
        starts = tuple(int(x) for x in np.cumsum([0] + [len(f) for f in frames[:-1]]))
        audio_starts = tuple(int(x) for x in np.cumsum([0, *samples[:-1]]))
        return StoryMedia(np.concatenate(frames), np.concatenate(pieces), fps, rate, starts,
                          tuple(len(f) for f in frames), audio_starts, samples, story.texts)

    def generate(self, stories: list[PreparedStory], *, seed: int = 0, steps: int = 20, progress: bool = False) -> list[StoryMedia]:
        video, audio = self.latents(stories, seed=seed, steps=steps, progress=progress)
        return [self.decode(s, video[:, b], audio[:, b]) for b, s in enumerate(stories)]


def write_story(media: StoryMedia, out_path: str, captions: list[str], cuts: list[str], *,
                strengths: list[float] | None = None, overwrite: bool = True):
    """Write `out_path` (mp4: H.264 video + AAC audio, one chapter per shot), the `.shots.json` beside it and a
    contact sheet `<out>.png` (one frame per shot: its middle frame, labelled with its cut and, when given, the
    boundary strength it was generated with) — all three together or none. Returns the `StoryOutputs` paths."""
    from unityshots_jax.media.contact_sheet import render_contact_sheet
    from unityshots_jax.media.mp4_writer import ShotSegment, atomic_outputs, encode_story_mp4, plan_story_outputs

    outputs = plan_story_outputs(out_path, overwrite=overwrite)
    segments = [ShotSegment(i, s / media.fps, n / media.fps, captions[i]) for i, (s, n) in enumerate(zip(media.shot_starts, media.shot_frames))]
    to_u8 = lambda x: np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    middles = [to_u8(media.shot(i)[len(media.shot(i)) // 2]) for i in range(len(media.shot_frames))]
    labels = [f"{i + 1} {cuts[i].lower()}" + (f" b={strengths[i]:.2f}" if strengths is not None and i else "")
              for i in range(len(middles))]
    sheet = render_contact_sheet(middles, labels)
    with atomic_outputs(outputs.paths) as (tmp_mp4, tmp_json, tmp_png):
        encode_story_mp4(tmp_mp4, tmp_json, to_u8(media.frames), media.fps, np.clip(media.audio, -1.0, 1.0),
                         media.sample_rate, segments, name=outputs.mp4)
        sheet.save(tmp_png, format="PNG")
    return outputs
