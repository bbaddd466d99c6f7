"""Session-wide fixtures: each tiny checkpoint (and its conversion) is made once per configuration and worker."""

from __future__ import annotations

import os

import pytest

from helpers.checkpoints import Spec, make_checkpoint


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """checkpoint(spec) -> path of a tiny official-layout .safetensors for `spec` (made once per session)."""
    made: dict[Spec, str] = {}
    root = tmp_path_factory.mktemp("checkpoints")

    def get(spec: Spec = Spec()) -> str:
        if spec not in made:
            made[spec] = make_checkpoint(spec, str(root / f"{len(made)}.safetensors"))
        return made[spec]

    return get


@pytest.fixture(scope="session")
def converted(checkpoint, tmp_path_factory):
    """converted(spec) -> (source .safetensors, directory written by `convert`), made once per session."""
    from unityshots_jax.checkpoint.ltx_convert import convert

    made: dict[Spec, tuple[str, str]] = {}
    root = tmp_path_factory.mktemp("converted")

    def get(spec: Spec = Spec()) -> tuple[str, str]:
        if spec not in made:
            src = checkpoint(spec)
            dst = os.path.join(str(root), str(len(made)))
            convert(src, dst, progress=False)
            made[spec] = (src, dst)
        return made[spec]

    return get
