"""The optimizer: AdamW with per-group learning rates, warm-up and schedule, global-norm clipping, frozen groups.

Parameter groups are the top-level keys of the trainable tree: "backbone" (the LTX transformer), "memory"
(UnityShots' new parameters) and "lora" (adapters, when enabled). Paper defaults: AdamW (0.9, 0.999), 1e-5 for
the backbone, 5e-5 for the gate MLP, clipping at 1.0. Master weights are float32; the loss casts a copy to the
compute dtype, so gradients and updates stay float32.
"""

from __future__ import annotations

import dataclasses

import jax
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    lr_backbone: float = 1e-5
    lr_memory: float = 5e-5
    lr_lora: float = 1e-4
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: str = "cosine"  # "cosine" decays to end_factor·lr over total_steps, "constant" holds
    total_steps: int = 10_000
    end_factor: float = 0.1
    clip_norm: float = 1.0
    freeze_backbone: bool = False
    ema_decay: float = 0.0  # > 0 keeps an exponential moving average of the trainable parameters


def _schedule(lr: float, cfg: OptimizerConfig) -> optax.Schedule:
    warmup = max(cfg.warmup_steps, 0)
    if cfg.schedule == "constant":
        main = optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        main = optax.cosine_decay_schedule(lr, max(cfg.total_steps - warmup, 1), alpha=cfg.end_factor)
    else:
        raise ValueError(f"optimizer.schedule: {cfg.schedule!r} is not 'cosine' or 'constant'")
    if warmup == 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def learning_rates(cfg: OptimizerConfig) -> dict[str, optax.Schedule]:
    return {
        "backbone": _schedule(cfg.lr_backbone, cfg),
        "memory": _schedule(cfg.lr_memory, cfg),
        "lora": _schedule(cfg.lr_lora, cfg),
    }


def _group_transforms(cfg: OptimizerConfig, groups: tuple[str, ...]) -> dict[str, optax.GradientTransformation]:
    rates = learning_rates(cfg)
    return {g: optax.adamw(rates[g], b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay) for g in groups}


def build_optimizer(cfg: OptimizerConfig, groups: tuple[str, ...]) -> optax.GradientTransformation:
    """Clip by global norm over the trainable groups `groups`, then AdamW with each group's schedule.

    Frozen groups are not passed here at all: they get no gradients, no optimizer state and no update.
    """
    label = lambda tree: {g: jax.tree.map(lambda _: g, sub) for g, sub in tree.items()}  # noqa: E731
    tx = optax.multi_transform(_group_transforms(cfg, groups), label)
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx) if cfg.clip_norm > 0 else tx


def map_opt_state_params(cfg: OptimizerConfig, opt_state, params_like, non_params):
    """`build_optimizer`'s state with every copy of the parameter tree (Adam's moments) replaced by `params_like`
    (a tree shaped like the trainable parameters, e.g. their shardings) and every other leaf (step counts) by
    `non_params(leaf)`. The copies are found by `optax.tree_map_params` on each group's AdamW (whose state holds the
    whole parameter tree, other groups' leaves masked); `optax.MaskedNode`s stay."""
    transforms = _group_transforms(cfg, tuple(params_like))
    masked = lambda x: isinstance(x, optax.MaskedNode)  # noqa: E731
    keep_masked = lambda value, like: value if masked(value) else like  # noqa: E731

    def groups_state(state: optax.MultiTransformState) -> optax.MultiTransformState:
        inner = {
            g: s._replace(inner_state=optax.tree_map_params(transforms[g], keep_masked, s.inner_state, params_like,
                                                            transform_non_params=non_params, is_leaf=masked))
            for g, s in state.inner_states.items()
        }  # fmt: skip
        return state._replace(inner_states=inner)

    if cfg.clip_norm > 0:  # chain(clip, multi_transform): clip's state has no leaves
        clip_state, group_state = opt_state
        return (jax.tree.map(non_params, clip_state), groups_state(group_state))
    return groups_state(opt_state)
