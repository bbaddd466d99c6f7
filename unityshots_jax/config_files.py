"""Load an `ml_collections` config file (a Python file with `get_config()`) and apply command-line overrides.

    cfg = load_config("configs/tiny.py", ["--config.execution.attention=dense", "--config.transformer.num_layers=4"])

An override must name an existing key; its value is parsed with the type of the current value. The result's
`transformer` section builds an `LTXConfig`, its `execution` section an `ExecutionConfig`.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys

import ml_collections

from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig


class ConfigFileError(ValueError):
    """A config file or override that cannot be used; the message names the file or key."""


def load_config(path: str, overrides: list[str] | tuple[str, ...] = ()) -> ml_collections.ConfigDict:
    if not os.path.isfile(path):
        raise ConfigFileError(f"{path}: config file not found")
    root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if root not in sys.path:
        sys.path.insert(0, root)  # so config files can import their siblings as `configs.<name>`
    spec = importlib.util.spec_from_file_location(f"_unityshots_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigFileError(f"{path}: defines no get_config()")
    cfg = module.get_config()
    for item in overrides:
        apply_override(cfg, item)
    return cfg


def apply_override(cfg: ml_collections.ConfigDict, item: str) -> None:
    """Apply one `--config.a.b=value` (or `a.b=value`) override in place."""
    text = item[2:] if item.startswith("--") else item
    if not text.startswith("config.") or "=" not in text:
        raise ConfigFileError(f"{item}: expected --config.<key>=<value>")
    dotted, raw = text[len("config."):].split("=", 1)
    *parents, leaf = dotted.split(".")
    node = cfg
    for name in parents:
        if name not in node:
            raise ConfigFileError(f"{item}: unknown config key {dotted!r}")
        node = node[name]
    if leaf not in node:
        raise ConfigFileError(f"{item}: unknown config key {dotted!r}")
    current = node[leaf]
    if isinstance(current, str):
        value = raw
    else:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise ConfigFileError(f"{item}: cannot parse {raw!r} as {type(current).__name__}") from None
        if isinstance(current, bool) != isinstance(value, bool) or (
            isinstance(current, (int, float)) and not isinstance(value, (int, float))
        ):
            raise ConfigFileError(f"{item}: expected a {type(current).__name__}, got {raw!r}")
        if isinstance(current, float):
            value = float(value)
    node[leaf] = value


def model_config(cfg: ml_collections.ConfigDict) -> LTXConfig:
    return LTXConfig.from_checkpoint_config(dict(cfg.transformer), cfg.get("model_type", "audio_video"))


def execution_config(cfg: ml_collections.ConfigDict) -> ExecutionConfig:
    return ExecutionConfig(**dict(cfg.execution))
