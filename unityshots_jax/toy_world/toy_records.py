"""Toy stories as training records (`StoryRecord`, the format every story data set uses) and a grain source.

A story is rendered, passed through the "toy_world" codec bundle (built through the codec registry, as generation
builds it: `unityshots_jax.story.story_codecs`), and its captions go through the story-prompt composition
(`unityshots_jax.prompt.story_prompt.compose_shot_texts`) and the bundle's text encoder — the exact path a story
file takes at generation — so training and generation see the same latents and text for the same story. Identity and
world are named only in the opening shot's text; later shots must take them from memory (or a reference).
"""

from __future__ import annotations

import numpy as np

from unityshots_jax.codecs.base import CodecBundle
from unityshots_jax.data.record_writer import config_fingerprint
from unityshots_jax.data.story_record import CONTINUE, FIRST, HARD, StoryRecord, encode_record
from unityshots_jax.prompt.story_prompt import StoryPrompt, compose_shot_texts, parse_story_prompt
from unityshots_jax.story.story_codecs import story_codecs
from unityshots_jax.story.story_config import StoryConfig
from unityshots_jax.toy_world.codec_bundle import NAME as CODEC
from unityshots_jax.toy_world.render import render_portrait, render_shot_audio, render_shot_video, render_voice_clip
from unityshots_jax.toy_world.world_spec import DURATION_STEP, FPS, TEMPORAL_SCALE, ToyStory, sample_story

CUT_IDS = {"FIRST": FIRST, "CONTINUE": CONTINUE, "HARD": HARD}


def story_prompt_dict(story: ToyStory) -> dict:
    """The story as a story file would write it (`docs/story_format.md`)."""
    shots = []
    for i, s in enumerate(story.shots):
        shot = {"duration": s.duration, "caption": story.shot_caption(i), "transition": s.cut.lower()}
        if s.dialogue:
            shot["dialogue"] = s.dialogue
        shots.append(shot)
    c = story.character
    return {"caption": story.caption, "characters": [{"name": c.name, "description": c.description}], "shots": shots}


def story_prompt(story: ToyStory) -> StoryPrompt:
    return parse_story_prompt(story_prompt_dict(story), source=story.story_id, check_files=False)


def durations_for(cfg: StoryConfig) -> tuple[float, ...]:
    """The shot durations (s) a configuration holds: multiples of 0.5 s from `stm_frames` to `video_frames`
    latent frames."""
    per_latent = TEMPORAL_SCALE / FPS
    out = []
    d = DURATION_STEP
    while d / per_latent <= cfg.video_frames + 1e-9:
        if d / per_latent >= cfg.stm_frames - 1e-9:
            out.append(d)
        d += DURATION_STEP
    return tuple(out)


def story_record(
    story: ToyStory,
    cfg: StoryConfig,
    codecs: CodecBundle,
    *,
    ref_image: bool,
    ref_voice: bool,
) -> StoryRecord:
    """The record of a rendered story (video / audio latents and captions through `codecs`, the "toy_world" bundle)."""
    vc, ac = codecs.video, codecs.audio
    k = len(story.shots)
    video = [vc.encode(render_shot_video(story, i)) for i in range(k)]
    audio = [ac.encode(render_shot_audio(story, i)[:, None]) for i in range(k)]
    f_max, fa_max = max(v.shape[0] for v in video), max(a.shape[0] for a in audio)
    video_latents = np.zeros((k, f_max, *video[0].shape[1:]), np.float32)
    audio_latents = np.zeros((k, fa_max, ac.latent_channels), np.float32)
    for i, (v, a) in enumerate(zip(video, audio)):
        video_latents[i, : len(v)], audio_latents[i, : len(a)] = v, a
    text = codecs.text.encode(compose_shot_texts(story_prompt(story)))
    # references are rendered only when the record carries them (this runs for every training example)
    ref_image_arr = np.zeros((cfg.ref_image_frames, *video_latents.shape[2:]), np.float32)
    if ref_image:
        portrait = vc.encode(np.repeat(render_portrait(story.character)[None], vc.temporal_scale, 0))
        ref_image_arr[:] = portrait
    ref_audio = np.zeros((cfg.ref_audio_frames, ac.latent_channels), np.float32)
    if ref_voice:
        ref_audio[:] = ac.encode(render_voice_clip(story.character, seconds=cfg.ref_audio_frames / ac.latent_rate)[:, None])
    ref_mask = np.full((cfg.ref_audio_frames,), int(ref_voice), np.int32)
    modes = np.ones((k, 3), bool)
    modes[:, 2] = ref_image
    return StoryRecord(
        story_id=story.story_id,
        video_latents=video_latents,
        n_frames=np.asarray([len(v) for v in video], np.int32),
        audio_latents=audio_latents,
        n_audio=np.asarray([len(a) for a in audio], np.int32),
        video_context=text.video,
        audio_context=text.audio,
        context_mask=text.mask,
        cut_type=np.asarray([CUT_IDS[s.cut] for s in story.shots], np.int32),
        allowed_modes=modes,
        ref_image=ref_image_arr,
        has_ref_image=bool(ref_image),
        ref_audio=ref_audio,
        ref_audio_mask=ref_mask,
    )


class ToyWorldSource:
    """n toy stories generated on demand (grain random-access source of encoded records): record i is drawn from
    `default_rng([seed, i])`, so identical wherever and however often it is read.

    Shots per story uniform in [min_shots, cfg.max_shots]; a reference image / voice present with probability
    p_ref_image / p_ref_voice. Context widths must be the model's (`video_context_dim`, `audio_context_dim`).
    """

    def __init__(self, cfg: StoryConfig, n: int, seed: int, *, video_context_dim: int, audio_context_dim: int,
                 min_shots: int = 3, p_ref_image: float = 0.3, p_ref_voice: float = 0.3):
        if n < 1:
            raise ValueError(f"ToyWorldSource: n must be ≥ 1, got {n}")
        self.cfg, self.n, self.seed = cfg, int(n), int(seed)
        self.min_shots = min(int(min_shots), cfg.max_shots)
        self.p_ref_image, self.p_ref_voice = float(p_ref_image), float(p_ref_voice)
        self.codecs = story_codecs(CODEC, cfg, int(video_context_dim), int(audio_context_dim))
        self.durations = durations_for(cfg)
        if not self.durations:
            raise ValueError("ToyWorldSource: the story configuration holds no whole-0.5 s shot duration")

    def __len__(self) -> int:
        return self.n

    def story(self, key: int) -> tuple[ToyStory, bool, bool]:
        """The ground truth of record `key` and whether it carries a reference image / voice."""
        key = int(key)
        if not 0 <= key < self.n:
            raise IndexError(f"ToyWorldSource: key {key} out of range [0, {self.n})")
        rng = np.random.default_rng([self.seed, key])
        k = int(rng.integers(self.min_shots, self.cfg.max_shots + 1))
        story = sample_story(rng, k, story_id=f"toy-{self.seed}-{key}", durations=self.durations)
        return story, bool(rng.random() < self.p_ref_image), bool(rng.random() < self.p_ref_voice)

    def record(self, key: int) -> StoryRecord:
        story, ref_image, ref_voice = self.story(key)
        return story_record(story, self.cfg, self.codecs, ref_image=ref_image, ref_voice=ref_voice)

    def __getitem__(self, key) -> bytes:
        return encode_record(self.record(key))

    def __repr__(self) -> str:
        fp = config_fingerprint(self.cfg, self.codecs.text.video_dim, self.codecs.text.audio_dim)
        return (f"ToyWorldSource(n={self.n}, seed={self.seed}, config={fp}, min_shots={self.min_shots}, "
                f"p_ref_image={self.p_ref_image}, p_ref_voice={self.p_ref_voice})")
