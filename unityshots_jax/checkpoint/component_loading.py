"""The one strict, one-tensor-at-a-time weight source of the component loaders (video VAE, upsampler, audio VAE,
vocoder): opening an official single file or a converted directory, and the checks every loader applies with the
same messages — a missing tensor, a tensor of the wrong shape, a tensor under the component's prefixes that the
configured model does not use — each a `CheckpointError` naming the tensor.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """An opened weights source: the safetensors `file` holding the tensors and the full checkpoint `config`."""

    path: str
    file: SafetensorsFile
    config: dict


def open_source(path: str, *, config_from_file: bool = True) -> CheckpointSource:
    """Open an official single-file checkpoint or a converted directory (`config.json` + `extras.safetensors`).

    The config is the file's `metadata["config"]` JSON (or the converted directory's `checkpoint_config`).
    config_from_file=False: a file without a config is allowed (config `{}`), for callers that bring their own.
    """
    if os.path.isdir(path):
        meta_path, extras = os.path.join(path, "config.json"), os.path.join(path, "extras.safetensors")
        for p in (meta_path, extras):
            if not os.path.isfile(p):
                raise CheckpointError(f"{path}: not a converted LTX directory (no {os.path.basename(p)})")
        with open(meta_path) as f:
            config = json.load(f).get("checkpoint_config")
        if not isinstance(config, dict):
            raise CheckpointError(f"{meta_path}: no 'checkpoint_config' object")
        return CheckpointSource(path, SafetensorsFile(extras), config)
    file = SafetensorsFile(path)
    if "config" not in file.metadata:
        if config_from_file:
            raise CheckpointError(f"{path}: no metadata['config'] in the safetensors header")
        return CheckpointSource(path, file, {})
    try:
        config = json.loads(file.metadata["config"])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata['config'] is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: metadata['config'] is not a JSON object")
    return CheckpointSource(path, file, config)


def check_tensor(source: CheckpointSource, what: str, key: str, want: tuple[int, ...], available: set[str]) -> None:
    """`key` must be in `available` (the file's keys) with checkpoint shape `want`."""
    if key not in available:
        raise CheckpointError(f"{source.path}: {what}: tensor {key!r} is missing (expected shape {list(want)})")
    shape = tuple(source.file.info(key)[1])
    if shape != tuple(want):
        raise CheckpointError(
            f"{source.path}: {what}: tensor {key!r} has shape {list(shape)}, the config needs {list(want)}")


def refuse_unused(source: CheckpointSource, what: str, owned: Iterable[str], used: set[str],
                  allowed: Iterable[str] = ()) -> None:
    """Every file tensor under the `owned` prefixes must be in `used` (or `allowed`: carried, never read)."""
    owned, allowed, keys = tuple(owned), set(allowed), source.file.keys()
    unused = sorted(k for k in keys if k.startswith(owned) and k not in used and k not in allowed)
    if unused:
        raise CheckpointError(f"{source.path}: {what}: tensor {unused[0]!r} (and {len(unused) - 1} more) is not used "
                              "by the configured model; the file and its config disagree")
