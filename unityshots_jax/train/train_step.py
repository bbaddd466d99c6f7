"""The training state and the sharded, jitted Shots-Forcing step.

`TrainState` holds float32 master weights split into trainable groups and frozen ones, the optimizer state,
an optional EMA, the RNG and a count of skipped (non-finite) steps. `make_train_step` returns the step jitted with
explicit in/out shardings (from the parameters' logical axis names and the config's rules) and the state's
buffers donated. A step whose loss or gradient norm is not finite leaves parameters and optimizer state
untouched and increments `skipped`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unityshots_jax.ltx.config import ExecutionConfig
from unityshots_jax.sharding import logical_to_spec, use_mesh
from unityshots_jax.story.story_model import StoryModel
from unityshots_jax.train.lora import apply_lora
from unityshots_jax.train.optimizer import OptimizerConfig, build_optimizer, learning_rates, map_opt_state_params
from unityshots_jax.train.shots_forcing import LossConfig, TrainBatch, story_loss


@struct.dataclass
class TrainState:
    step: jnp.ndarray
    trainable: dict
    frozen: dict
    opt_state: optax.OptState
    ema: dict | None
    rng: jnp.ndarray  # raw key data (uint32), checkpointable
    skipped: jnp.ndarray


@dataclasses.dataclass(frozen=True)
class StepConfig:
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    execution: ExecutionConfig = ExecutionConfig(dtype="float32")
    lora_rank: int = 0
    lora_alpha: float = 16.0


def split_groups(params: dict, cfg: StepConfig) -> tuple[dict, dict]:
    """Pure-dict StoryModel params (+ optional "lora") → (trainable groups, frozen groups)."""
    frozen_backbone = cfg.optimizer.freeze_backbone or cfg.lora_rank > 0
    trainable = {k: v for k, v in params.items() if not (k == "backbone" and frozen_backbone)}
    frozen = {k: v for k, v in params.items() if k not in trainable}
    return trainable, frozen


def model_params(trainable: dict, frozen: dict, cfg: StepConfig) -> dict:
    """The StoryModel's pure-dict parameters in the compute dtype, LoRA folded in."""
    params = {**frozen, **trainable}
    lora = params.pop("lora", None)
    if lora is not None:
        params["backbone"] = apply_lora(params["backbone"], lora, cfg.lora_alpha)
    dtype = jnp.dtype(cfg.execution.dtype)
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, params)


def init_train_state(params: dict, key: jax.Array, cfg: StepConfig) -> TrainState:
    """A fresh state from float32 pure-dict parameters (`{"backbone", "memory"[, "lora"]}`)."""
    trainable, frozen = split_groups(params, cfg)
    tx = build_optimizer(cfg.optimizer, tuple(trainable))
    ema = jax.tree.map(jnp.copy, trainable) if cfg.optimizer.ema_decay > 0 else None
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        trainable=trainable,
        frozen=frozen,
        opt_state=tx.init(trainable),
        ema=ema,
        rng=jax.random.key_data(key),
        skipped=jnp.zeros((), jnp.int32),
    )


def train_step(state: TrainState, batch: TrainBatch, graphdef: nnx.GraphDef, cfg: StepConfig) -> tuple[TrainState, dict]:
    """One optimizer step on `batch`; returns the new state and scalar metrics."""
    key, sub = jax.random.split(jax.random.wrap_key_data(state.rng))
    tx = build_optimizer(cfg.optimizer, tuple(state.trainable))

    def loss_fn(trainable):
        model: StoryModel = nnx.merge(graphdef, model_params(trainable, state.frozen, cfg))
        return story_loss(model, batch, sub, cfg.loss, cfg.execution)

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.trainable)
    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
    trainable = optax.apply_updates(state.trainable, updates)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
    trainable, opt_state = keep(trainable, state.trainable), keep(opt_state, state.opt_state)
    ema = state.ema
    if ema is not None:
        d = cfg.optimizer.ema_decay
        ema = keep(jax.tree.map(lambda e, p: d * e + (1 - d) * p, ema, trainable), ema)
    rates = learning_rates(cfg.optimizer)
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "lr": rates["memory" if "backbone" not in state.trainable else "backbone"](state.step),
        "lr_memory": rates["memory"](state.step),
        "finite": finite.astype(jnp.float32),
        **aux,
    }
    new_state = state.replace(
        step=state.step + 1,
        trainable=trainable,
        opt_state=opt_state,
        ema=ema,
        rng=jax.random.key_data(key),
        skipped=state.skipped + (~finite).astype(jnp.int32),
    )
    return new_state, metrics


# ----------------------------------------------------------------------------------------------------- sharding
def param_logical_axes(abstract_model: StoryModel) -> dict:
    """Pure dict of logical axis-name tuples for every parameter of the (abstract) story model."""
    out: dict = {}
    for path, var in nnx.to_flat_state(nnx.state(abstract_model, nnx.Param)):
        names = var.get_metadata().get("out_sharding") or (None,) * len(var.get_value().shape)
        node = out
        for part in path[:-1]:
            node = node.setdefault(str(part), {})
        node[str(path[-1])] = tuple(names)
    return out


def state_shardings(state_shape: TrainState, logical: dict, mesh: Mesh, rules, optimizer: OptimizerConfig) -> TrainState:
    """NamedShardings for every leaf of a (possibly abstract) TrainState: parameters and their EMA by the parameters'
    logical axes under `rules`; the optimizer state's copies of the parameter tree (Adam's moments) like the
    parameters, found by optax's param-tree mapping (`optimizer.map_opt_state_params`); LoRA adapters, step
    counts and scalars replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())

    def for_group(group: str, tree):
        if group == "lora" or group not in logical:
            return jax.tree.map(lambda _: replicated, tree)
        return jax.tree.map(lambda names, _: NamedSharding(mesh, logical_to_spec(names, rules)), logical[group], tree,
                            is_leaf=lambda x: isinstance(x, tuple))

    def params_sharding(tree: dict) -> dict:
        return {g: for_group(g, sub) for g, sub in tree.items()}

    trainable_sh = params_sharding(state_shape.trainable)
    opt_sh = map_opt_state_params(optimizer, state_shape.opt_state, trainable_sh, lambda _: replicated)
    return TrainState(
        step=replicated,
        trainable=trainable_sh,
        frozen=params_sharding(state_shape.frozen),
        opt_state=opt_sh,
        ema=None if state_shape.ema is None else trainable_sh,
        rng=replicated,
        skipped=replicated,
    )


def batch_sharding(mesh: Mesh, batch_shape: TrainBatch, rules) -> TrainBatch:
    """Every batch array sharded on its leading (batch) axis over the data-parallel mesh axes."""
    spec = logical_to_spec(("activation_batch",), rules)
    return jax.tree.map(lambda x: NamedSharding(mesh, PartitionSpec(*spec, *([None] * (x.ndim - 1)))), batch_shape)


def make_train_step(
    graphdef: nnx.GraphDef, cfg: StepConfig, mesh: Mesh, state_sh: TrainState, batch_sh: TrainBatch, rules
) -> Callable[[TrainState, TrainBatch], tuple[TrainState, dict]]:
    """The step jitted over `mesh` with explicit shardings and donated state buffers."""
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        functools.partial(train_step, graphdef=graphdef, cfg=cfg),
        in_shardings=(state_sh, batch_sh),
        out_shardings=(state_sh, replicated),
        donate_argnums=(0,),
    )

    def step(state: TrainState, batch: TrainBatch):
        with use_mesh(mesh, rules):
            return jitted(state, batch)

    step.jitted = jitted
    return step
