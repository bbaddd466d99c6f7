"""Context parallelism under the `fsdp_context` rule preset on 8 forced CPU devices (mesh fsdp 2 × context 4):
weights sharded over context × fsdp, video tokens over context, every attention per shard with K/V all-gathered
over context. The transformer forward on the story's real masks and its gradients, the same forward with the splash
kernel, the Shots-Forcing loss and its gradients, and a sampled story equal the single-device results
(tests/helpers/context_parallel_runs.py, in a subprocess; programs go through the shared compilation cache of
tests/helpers/training_runs.py, so only the first run on a machine compiles: ~5 min of CPU)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from helpers import training_runs

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "context_parallel_runs.py")
CHECKS = ("forward", "gradients", "splash", "loss", "story")


@pytest.fixture(scope="module")
def rows() -> dict[str, dict]:
    code, out, err = training_runs.run([sys.executable, SCRIPT], timeout=2400, devices=8)
    assert code == 0, err[-4000:]
    found = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {row["check"]: row for row in found}


def test_every_check_ran_on_the_fsdp_context_mesh(rows):
    assert sorted(rows) == sorted(CHECKS)
    for row in rows.values():
        assert row["devices"] == 8 and row["mesh"] == {"fsdp": 2, "context": 4}, row
    assert rows["forward"]["sharded_leaves"] > 50  # weights really are spread over context × fsdp


def test_forward_and_gradients_match_one_device(rows):
    assert rows["forward"]["rel"] <= 1e-5, rows["forward"]
    assert rows["gradients"]["rel"] <= 1e-4, rows["gradients"]
    assert rows["splash"]["rel"] <= 1e-5 and rows["splash"]["rel_to_flash"] <= 1e-5, rows["splash"]


def test_shots_forcing_loss_and_gradients_match_one_device(rows):
    assert rows["loss"]["rel"] <= 1e-5 and rows["loss"]["grad_rel"] <= 1e-4, rows["loss"]


def test_sampled_story_matches_one_device(rows):
    assert rows["story"]["rel"] <= 1e-4, rows["story"]
