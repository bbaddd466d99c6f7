"""The ltx23 text encoder sharded by its parameters' logical axes on 8 fake CPU devices equals one device
(subprocess: the device count is fixed when JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import training_runs
from helpers.text_fixtures import cases, gemma_dirs  # noqa: F401  (fixture)
from unityshots_jax.reference import tiny_text
from unityshots_jax.reference.tiny_configs import tiny_transformer_config

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "sharded_text.py")


def test_sharded_text_encoder_matches_single_device(gemma_dirs, tmp_path):
    case = cases()["a"]
    cfg = tiny_transformer_config()
    proc = tiny_text.build_processor(cfg, case.text["hidden_size"], case.text["num_hidden_layers"] + 1, seed=3)
    weights = str(tmp_path / "text.safetensors")
    tiny_text.write_text_checkpoint(weights, cfg, proc)
    env = training_runs.env(devices=8)
    r = subprocess.run([sys.executable, SCRIPT, gemma_dirs("a"), weights], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert [row["mesh"] for row in rows] == [{"fsdp": 4, "tensor": 2}, {"data": 2, "fsdp": 2, "tensor": 2}]
    for row in rows:
        assert row["rel"] <= 1e-5, row
        assert row["sharded_leaves"] > row["leaves"] // 2, row  # weights really are sharded
    assert rows[0]["q_spec"] == [None, "fsdp", "tensor"]  # layer axis whole, embed on fsdp, heads on tensor
