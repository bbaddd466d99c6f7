"""Random-init toy-world story models packaged like the shipped one (`unityshots_jax/assets/toy_world/`)."""

from __future__ import annotations

import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_CONFIG = os.path.join(REPO, "configs", "toy_world.py")


def make_random_toy_model(out_dir: str, layers: int = 1) -> str:
    """Write `out_dir/model.safetensors`: `configs/toy_world.py` with `layers` transformer layers, parameters at
    their initialisation (`trainer.initial_params`), meta {"codec": "toy_world"}. Returns `out_dir`, which
    `load_story_model` and `unityshots generate --checkpoint` accept."""
    from unityshots_jax.config_files import load_config
    from unityshots_jax.story.story_checkpoint import save_story_model
    from unityshots_jax.train.train_config import run_config
    from unityshots_jax.train.trainer import initial_params

    cfg = load_config(TOY_CONFIG, [f"--config.transformer.num_layers={int(layers)}"])
    params = initial_params(run_config(cfg))
    save_story_model(out_dir, json.loads(cfg.to_json_best_effort()), params, {"codec": "toy_world", "note": "random init"})
    return out_dir
