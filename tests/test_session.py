"""helpers.session: device choice (CUDA, MPS, CPU), the GPU-scale switch and the step cap."""

from __future__ import annotations

import pytest
import torch
import torchvision  # noqa: F401  (imported before any patching: its import inspects torch.backends.mps)

from helpers import session, train
from tests.small_networks import small_feature_network


@pytest.fixture
def no_overrides(monkeypatch):
    """No device, scale or step-cap variable set, whatever the shell running the tests has."""
    for name in (session.DEVICE_ENV, session.SCALE_ENV, session.MAX_STEPS_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def fake_hardware(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_pick_device_prefers_cuda_then_mps_then_cpu(no_overrides, cuda, mps, expected):
    fake_hardware(no_overrides, cuda, mps)
    assert session.pick_device() == torch.device(expected)


def test_device_variable_overrides_the_hardware(no_overrides):
    fake_hardware(no_overrides, cuda=False, mps=True)
    no_overrides.setenv(session.DEVICE_ENV, "cpu")
    assert session.pick_device() == torch.device("cpu")


def test_on_a_mac_gpu_start_names_mps_and_scaled_picks_the_gpu_values(no_overrides, capsys):
    fake_hardware(no_overrides, cuda=False, mps=True)
    device = session.start(seed=0)
    line = capsys.readouterr().out
    assert device == torch.device("mps")
    assert "device mps (Apple GPU via Metal)" in line
    assert session.on_gpu() and session.scaled(cpu=1, gpu=2) == 2


def test_scaled_follows_the_device_without_the_switch(no_overrides):
    assert session.scaled(cpu=1, gpu=2, device="cpu") == 1
    assert session.scaled(cpu=1, gpu=2, device="cuda") == 2
    no_overrides.setenv(session.SCALE_ENV, "auto")
    assert session.scaled(cpu=1, gpu=2, device="cpu") == 1


def test_scale_switch_forces_either_setting_whatever_the_device(no_overrides, capsys):
    no_overrides.setenv(session.SCALE_ENV, "gpu")
    assert session.scaled(cpu=1, gpu=2, device="cpu") == 2
    assert session.scaled(cpu=1, gpu=2) == 2
    session.start(seed=0)
    assert f"gpu settings ({session.SCALE_ENV})" in capsys.readouterr().out
    no_overrides.setenv(session.SCALE_ENV, " CPU ")
    assert session.scaled(cpu=1, gpu=2, device="cuda") == 1


def test_a_misspelt_scale_switch_is_an_error_not_a_silent_cpu_run(no_overrides):
    no_overrides.setenv(session.SCALE_ENV, "gpus")
    with pytest.raises(ValueError, match=session.SCALE_ENV):
        session.scaled(cpu=1, gpu=2)


def test_step_cap(no_overrides):
    assert session.step_cap() is None and session.capped_steps(500) == 500
    no_overrides.setenv(session.MAX_STEPS_ENV, "3")
    assert session.step_cap() == 3
    assert session.capped_steps(500) == 3 and session.capped_steps(2) == 2
    for bad in ("0", "-2", "three", "2.5"):
        no_overrides.setenv(session.MAX_STEPS_ENV, bad)
        with pytest.raises(ValueError, match=session.MAX_STEPS_ENV):
            session.capped_steps(10)


def test_fit_runs_at_most_the_capped_number_of_steps(no_overrides):
    model = torch.nn.Linear(4, 2)
    batches = train.random_batches(torch.randn(16, 4), torch.randint(2, (16,)), batch_size=4)
    no_overrides.setenv(session.MAX_STEPS_ENV, "3")
    history = train.fit(model, batches, train.cross_entropy_step, steps=200, progress=False)
    assert len(history["loss"]) == 3
    no_overrides.delenv(session.MAX_STEPS_ENV)
    history = train.fit(model, batches, train.cross_entropy_step, steps=5, progress=False)
    assert len(history["loss"]) == 5


def test_every_loop_of_the_course_honours_the_step_cap(no_overrides):
    """fit (above, and training a detector), DeepDream and style transfer: a smoke run stays short."""
    from helpers import detection, dream, style
    from helpers.data import ShapesScenes, render

    no_overrides.setenv(session.MAX_STEPS_ENV, "2")
    images, targets = render(ShapesScenes(4, size=64, seed=3), "targets")
    model = detection.small_faster_rcnn(image_size=64, stride=4, anchor_sizes=(8, 16, 32))
    history = train.fit(model, detection.random_scene_batches(images, targets, batch_size=2), detection.detection_losses,
                        steps=50, progress=False)
    assert len(history["loss"]) == 2

    net = small_feature_network()
    _, objectives = dream.deepdream(net, torch.rand(3, 32, 32), "relu2", num_octaves=3, steps=40, progress=False)
    assert len(objectives) == 3 * 2

    _, history = style.style_transfer(net, torch.rand(3, 24, 24), torch.rand(3, 24, 24), content_layer="relu2",
                                      style_layers=("relu1", "relu2"), steps=300, record_every=1, progress=False)
    assert history["step"] == [0, 1, 2]
