"""The toy-world tooling around a trained model: `unityshots package` from a real (2-step) training run, and the
memory study script end to end on a random-init model (numbers meaningless, files and structure checked)."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from helpers.toy_models import TOY_CONFIG, make_random_toy_model
from unityshots_jax.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory) -> str:
    return make_random_toy_model(str(tmp_path_factory.mktemp("toy_model")), layers=1)


def test_package_a_training_run_and_generate_from_it(tmp_path, capsys):
    from unityshots_jax.story.story_checkpoint import load_story_model
    from unityshots_jax.train.package import load_trained_model

    work = tmp_path / "run"
    overrides = ["--config.transformer.num_layers=1", "--config.steps=2", "--config.checkpoint_every=2",
                 "--config.batch_size=2", "--config.data.worker_count=0", "--config.data.records=8"]
    assert main(["train", "--config", TOY_CONFIG, "--workdir", str(work), "--quiet", *overrides]) == 0
    assert main(["package", str(work), str(tmp_path / "pkg"), "--note", "test run"]) == 0
    capsys.readouterr()
    from_workdir = load_trained_model(str(work))
    packaged = load_story_model(str(tmp_path / "pkg"))
    assert packaged.meta["made_by"] == "test run" and packaged.meta["train_steps"] == 2
    assert packaged.meta["codec"] == "toy_world" and packaged.meta["weights"] == "ema"
    a, b = (jax_leaves(m.params) for m in (from_workdir, packaged))
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    out = tmp_path / "s.mp4"
    story = os.path.join(REPO, "configs", "stories", "street_cut_knob.json")
    assert main(["generate", story, "-o", str(out), "--checkpoint", str(tmp_path / "pkg"), "--steps", "2", "--quiet"]) == 0
    assert out.exists()


def jax_leaves(state):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(state)]


def test_memory_study_writes_table_plots_and_json(tmp_path, toy_model):
    spec = importlib.util.spec_from_file_location("memory_study", os.path.join(REPO, "experiments", "toy_world", "memory_study.py"))
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    argv = ["--checkpoint", toy_model, "--stories", "2", "--ks", "3", "--knob-shots", "3", "--steps", "1",
            "--variants", "both", "no memory", "--out", str(tmp_path)]
    assert study.main(argv) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["variants"]) == {"both", "no memory"}
    row = results["variants"]["both"]["3"]
    assert row["later_shots"] == 4 and 0.0 <= row["identity"] <= 1.0
    assert list(results["knob"]) == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert all(v["cuts"] == 4 and np.isfinite(v["mean"]) for v in results["knob"].values())
    assert set(results["reference_strength"]) <= {"CONTINUE", "HARD"}
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| both |" in text and "| no memory |" in text and "memory_study.py --checkpoint" in text
    for png in ("memory_ablation.png", "cut_knob.png"):
        assert (tmp_path / png).stat().st_size > 1000
