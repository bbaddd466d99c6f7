"""Session-wide set-up: compile-fast XLA flags and the shared compilation cache for this process and its children,
the order files are handed to `pytest -n 2 --dist loadfile` workers, and the tiny checkpoints (each made once per
configuration and worker)."""

from __future__ import annotations

import os

from helpers.xla_flags import xla_flags

os.environ["XLA_FLAGS"] = xla_flags()  # before any JAX backend starts; children inherit it

import jax  # noqa: E402
import pytest  # noqa: E402

from helpers.checkpoints import Spec, make_checkpoint  # noqa: E402
from helpers.training_runs import cache_dir  # noqa: E402

# Programs compiled in one test (or worker, or subprocess) are loaded, not recompiled, by the next that builds the
# same program: many tests build the same tiny models through fresh jitted closures.
jax.config.update("jax_compilation_cache_dir", cache_dir())
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

# Heaviest first (longest-processing-time order keeps the two workers' finishing times close); measured with
# `--durations` (experiments/RESULTS.md, "Test suite time"). With `--dist loadfile --no-loadscope-reorder` each file
# runs on one worker (a module-scoped fixture is built once, not once per worker) and files are handed out in this
# order; files not listed follow in collection order. (`--dist loadgroup` would be finer, but xdist 3.8 cannot tag
# node ids under pytest 9.2, so its groups are silently ignored.)
HEAVY_FIRST = (
    "test_training.py", "test_ltx23_story.py", "test_context_parallel.py", "test_pipeline_parity.py", "test_training_multiprocess.py", "test_splash_attention.py",
    "test_parity_ltx_core.py", "test_model.py", "test_toy_study.py", "test_audio_codec.py", "test_story_sharded.py",
    "test_vocoder.py", "test_ltx23_bundle.py", "test_sharding.py", "test_notebook.py", "test_generate.py",
    "test_new_user_fixes.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order inside a file is kept


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
