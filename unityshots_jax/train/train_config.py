"""From an `ml_collections` training config to the typed configs the trainer uses (validated, errors name the key)."""

from __future__ import annotations

import dataclasses

import ml_collections

from unityshots_jax.codecs.base import CodecUnavailable, codec_name
from unityshots_jax.config_files import execution_config, model_config
from unityshots_jax.ltx.config import LTXConfig
from unityshots_jax.sharding import parse_rules
from unityshots_jax.story.story_config import GateConfig, StoryConfig
from unityshots_jax.train.optimizer import OptimizerConfig
from unityshots_jax.train.shots_forcing import LossConfig
from unityshots_jax.train.train_step import StepConfig


class TrainConfigError(ValueError):
    """A training config that cannot run; the message names the key."""


def _typed(cls, section: ml_collections.ConfigDict | dict, name: str, **extra):
    raw = dict(section)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise TrainConfigError(f"config.{name}.{unknown[0]}: unknown key (known: {sorted(known)})")
    for key, value in raw.items():
        if isinstance(value, list):
            raw[key] = tuple(value)
    try:
        return cls(**raw, **extra)
    except (TypeError, ValueError) as e:
        raise TrainConfigError(f"config.{name}: {e}") from None


def story_config(cfg: ml_collections.ConfigDict) -> StoryConfig:
    section = dict(cfg.story)
    gate = _typed(GateConfig, section.pop("gate", {}), "story.gate")
    return _typed(StoryConfig, section, "story", gate=gate)


def step_config(cfg: ml_collections.ConfigDict) -> StepConfig:
    return StepConfig(
        loss=_typed(LossConfig, cfg.loss, "loss"),
        optimizer=_typed(OptimizerConfig, cfg.optimizer, "optimizer"),
        execution=execution_config(cfg),
        lora_rank=int(cfg.lora.rank),
        lora_alpha=float(cfg.lora.alpha),
    )


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything `train` needs, typed."""

    ltx: LTXConfig
    story: StoryConfig
    step: StepConfig
    steps: int
    batch_size: int
    checkpoint_every: int
    keep_checkpoints: int
    log_every: int
    max_nonfinite: int
    seed: int
    init_checkpoint: str
    data_source: str
    data_records: int
    data_seed: int
    worker_count: int
    mesh: dict
    distributed: bool
    codec: str
    sharding_rules: tuple  # (logical axis, mesh axes) pairs, `unityshots_jax.sharding.parse_rules`


def _codec(cfg: ml_collections.ConfigDict) -> str:
    """config.codec, required; the toy-world data source renders through the "toy_world" bundle only."""
    try:
        name = codec_name(cfg, "config")
    except CodecUnavailable as e:
        raise TrainConfigError(str(e)) from None
    if str(cfg.data.source) == "toy_world" and name != "toy_world":
        raise TrainConfigError(f"config.codec: {name!r}, but data.source 'toy_world' makes toy_world latents")
    return name


def _rules(cfg: ml_collections.ConfigDict) -> tuple:
    """config.sharding_rules: a list of (logical axis, mesh axes) pairs (presets: configs/sharding_rules.py)."""
    try:
        return parse_rules(cfg.get("sharding_rules"))
    except ValueError as e:
        raise TrainConfigError(str(e)) from None


def run_config(cfg: ml_collections.ConfigDict) -> RunConfig:
    try:
        ltx = model_config(cfg)
    except ValueError as e:
        raise TrainConfigError(f"config.transformer: {e}") from None
    story = story_config(cfg)
    if ltx.video.in_channels != story.latent_channels or ltx.audio.in_channels != story.audio_channels:
        raise TrainConfigError("config.story.latent_channels / audio_channels: must equal the transformer's in_channels")
    for key in ("steps", "batch_size", "checkpoint_every", "keep_checkpoints", "log_every"):
        if int(cfg[key]) < 1:
            raise TrainConfigError(f"config.{key}: must be ≥ 1, got {cfg[key]}")
    return RunConfig(
        ltx=ltx,
        story=story,
        step=step_config(cfg),
        steps=int(cfg.steps),
        batch_size=int(cfg.batch_size),
        checkpoint_every=int(cfg.checkpoint_every),
        keep_checkpoints=int(cfg.keep_checkpoints),
        log_every=int(cfg.log_every),
        max_nonfinite=int(cfg.max_nonfinite),
        seed=int(cfg.seed),
        init_checkpoint=str(cfg.init.ltx_checkpoint),
        data_source=str(cfg.data.source),
        data_records=int(cfg.data.records),
        data_seed=int(cfg.data.seed),
        worker_count=int(cfg.data.worker_count),
        mesh={k: int(v) for k, v in dict(cfg.mesh).items()},
        distributed=bool(cfg.distributed),
        codec=_codec(cfg),
        sharding_rules=_rules(cfg),
    )
