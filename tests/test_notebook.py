"""experiments/toy_world.ipynb runs top to bottom on a CPU (executed with nbclient on a random 1-layer toy model)."""

from __future__ import annotations

import glob
import json
import os
import sys

import nbformat
import pytest
from helpers.toy_models import REPO, make_random_toy_model
from nbclient import NotebookClient

NOTEBOOK = os.path.join(REPO, "experiments", "toy_world.ipynb")
KERNEL = "unityshots-test"


@pytest.fixture(scope="session")
def random_toy_model(tmp_path_factory) -> str:
    return make_random_toy_model(str(tmp_path_factory.mktemp("toy_model")), layers=1)


def _kernelspec(root) -> str:
    """A kernelspec dir under `root` whose kernel is this interpreter (whatever `python3` resolves to elsewhere)."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    return str(root)


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_toy_world_notebook_runs(random_toy_model, tmp_path, monkeypatch):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    # The kernel inherits this environment: the model to load, where tempfile puts the notebook's outputs, and a
    # kernelspec pointing at this interpreter.
    monkeypatch.setenv("UNITYSHOTS_CHECKPOINT", random_toy_model)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setenv("JUPYTER_PATH", _kernelspec(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, (REPO, os.environ.get("PYTHONPATH")))))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel then uses the inline backend (figures as PNG)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, startup_timeout=120, kernel_name=KERNEL,
                            resources={"metadata": {"path": str(work)}})
    client.execute()  # raises CellExecutionError naming the cell on any error

    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        assert cell.execution_count is not None, f"code cell {i} did not run"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"code cell {i}: {errors[0].ename}: {errors[0].evalue}"
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    assert "kiko is a magenta striped diamond" in text  # the composed shot-0 text
    assert "memory_slots='both'" in text and "memory_slots='none'" in text
    data = [o.get("data", {}) for c in code for o in c.outputs]
    assert sum("image/png" in d for d in data) >= 3  # contact sheet + two plots
    assert any("audio" in d.get("text/html", "") for d in data)
    assert any("video" in d.get("text/html", "") for d in data)

    outs = glob.glob(str(tmp / "toy_world_*"))
    assert len(outs) == 1, outs
    for name in ("toy_story.mp4", "toy_story.png", "toy_story.shots.json"):
        assert os.path.getsize(os.path.join(outs[0], name)) > 0, name
    with open(os.path.join(outs[0], "toy_story.shots.json")) as f:
        shots = json.load(f)["shots"]
    assert [s["duration_s"] for s in shots] == [2.0, 1.5, 1.0, 1.5, 2.0]
    assert not os.listdir(work)  # nothing written next to the notebook
