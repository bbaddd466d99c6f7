"""The shot scan runs sharded (weights over fsdp / tensor, video tokens over context, stories over data) and
gives the unsharded result (8 forced CPU devices, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import training_runs

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "sharded_story.py")


def test_sharded_shot_scan_matches_single_device():
    env = training_runs.env(devices=8)
    r = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 3
    for row in rows:
        assert row["devices"] == 8
        assert row["sharded_leaves"] > 0, row  # the weights really are distributed
        assert row["video_rel"] <= 1e-4 and row["audio_rel"] <= 1e-4, row
