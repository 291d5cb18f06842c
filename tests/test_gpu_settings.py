"""Every notebook at the settings a GPU session gets, run on whatever device is here, a few steps per loop.

A Colab GPU session takes the `gpu=` value of every `helpers.session.scaled(cpu=..., gpu=...)` call:
bigger images, more scenes, more steps. CI and laptops only ever run the `cpu=` values, so a size or
a setting that only the GPU path uses could break unseen. Here each solution notebook that calls
`scaled()` (found when the test runs, read from disk) runs with `SEEING_NETWORKS_SCALE=gpu` (every
`scaled()` returns its GPU value) and `SEEING_NETWORKS_MAX_STEPS` (every loop of the course stops
after a few steps). Capped trainings cannot reach the quality a notebook asserts, so those asserts
(`notebook_runs.QUALITY_ASSERTS`) are recorded instead of raised; every other assert must hold.

The notebooks run offline here (06 and 08 load the ImageNet EfficientNet-Lite0 and 07 the original
VGG-19, which come with their packages on every machine). GPU sizes on the pretrained networks, what a Colab GPU session with downloaded weights
runs, are in test_pretrained_paths.py: at notebook level they would cost several CPU minutes,
because notebook 06's own DeepDream loop (an exercise) is not capped.
"""

from __future__ import annotations

import pytest
import torch

from helpers import features, session
from tests import notebook_runs

#: Steps per training or optimisation loop: two, so that a second step (optimiser state, schedules,
#: L-BFGS history) runs too.
MAX_STEPS = 2
#: Notebooks that need more: 03 smooths its detector's loss curves over a window of 20 steps.
MAX_STEPS_BY_NOTEBOOK = {"03_faster_rcnn": 20}

NOTEBOOKS = notebook_runs.solution_notebooks(containing="scaled(")


def test_the_notebooks_with_gpu_settings_are_found():
    assert len(NOTEBOOKS) >= 3, f"expected the training notebooks among {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_its_gpu_settings(path, monkeypatch, tmp_path):
    monkeypatch.setenv(session.SCALE_ENV, "gpu")
    monkeypatch.setenv(session.MAX_STEPS_ENV, str(MAX_STEPS_BY_NOTEBOOK.get(path.stem, MAX_STEPS)))
    monkeypatch.setenv(features.OFFLINE_ENV, "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))  # no weights, whatever this machine has
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    run = notebook_runs.run_notebook(path)
    print(run.summary())  # shown with -s: time, CPU time, the quality asserts missed, the slowest cells

    assert not run.error, f"{path.name} failed at its GPU settings:\n{run.error}"
    assert f"gpu settings ({session.SCALE_ENV})" in run.outputs, "the set-up line should say the GPU settings are forced"
    assert run.scaled, f"{path.name} calls scaled() but no call was recorded"
    not_gpu = [call for call in run.scaled if call["value"] != call["gpu"]]
    assert not not_gpu, f"scaled() returned something other than its gpu= value: {not_gpu}"
    notebook_runs.assert_only_quality_asserts_failed(run)
