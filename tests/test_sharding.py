"""Sharded forward on 8 fake CPU devices equals the single-device result (run in a subprocess: the device count
is fixed when JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import training_runs

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "sharded_forward.py")
MESHES = [
    {"data": 2, "fsdp": 2, "context": 2, "tensor": 1},
    {"fsdp": 4, "tensor": 2},
    {"data": 8},
    {"data": 2, "context": 2, "tensor": 2},
]


@pytest.fixture(scope="module")
def rows():
    env = training_runs.env(devices=8)
    r = subprocess.run([sys.executable, SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def test_sharded_forward_matches_single_device(rows):
    """Parameters placed by their logical axes, activation constraints live inside `sharding.use_mesh`."""
    assert [row["mesh"] for row in rows] == MESHES
    for row in rows:
        assert row["shapes"] == [[8, 16, 16], [8, 8, 16]], row
        assert row["rel"] <= 1e-5, row
        assert row["devices"] == 8, row
    by_mesh = {json.dumps(row["mesh"], sort_keys=True): row for row in rows}
    fsdp_tp = by_mesh[json.dumps({"fsdp": 4, "tensor": 2}, sort_keys=True)]
    # weights really are sharded: the layer axis stays whole, embed on fsdp, heads on tensor
    assert fsdp_tp["to_q_spec"] == [None, "fsdp", "tensor"]
    assert fsdp_tp["sharded_leaves"] > fsdp_tp["leaves"] // 2
    assert by_mesh[json.dumps({"data": 8}, sort_keys=True)]["sharded_leaves"] == 0  # data parallel: replicated

