"""helpers.dream: the step against autograd of ½‖a‖², octaves, clamping, the whole recipe."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

from helpers import dream, features


def _net(seed=0):
    """A small random network with named layers (conv1, relu1, ..., relu3), as a FeatureNetwork."""
    torch.manual_seed(seed)
    layers, c_in = [], 3
    for i, c_out in enumerate((8, 12, 16), start=1):
        layers += [(f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1)), (f"relu{i}", nn.ReLU())]
        if i < 3:
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
        c_in = c_out
    model = nn.Sequential(OrderedDict(layers)).eval().requires_grad_(False)
    return features.FeatureNetwork("test", model, torch.full((3,), 0.5), torch.full((3,), 0.25), False, "test net")


def test_setting_the_gradient_to_the_activation_ascends_half_squared_norm():
    cut = _net().truncated("relu2")
    image = torch.randn(2, 3, 16, 16)
    x = image.clone().requires_grad_(True)
    dream.dream_objective(cut.model(x)).backward()
    g = x.grad
    expected = image + 0.1 * g / (g.abs().mean() + 1e-8)
    got = dream.dream_step(cut.model, image, 0.1)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not got.requires_grad


def test_a_small_step_raises_the_objective():
    cut = _net().truncated("relu3")
    image = torch.randn(1, 3, 24, 24)
    before = dream.dream_objective(cut.model(image))
    after = dream.dream_objective(cut.model(dream.dream_step(cut.model, image, 0.01)))
    assert after > before


def test_dream_objective_by_hand():
    assert float(dream.dream_objective(torch.tensor([[3.0, 4.0]]))) == pytest.approx(12.5)
    with pytest.raises(TypeError):
        dream.dream_objective([1.0])


def test_octave_sizes():
    assert dream.octave_sizes((128, 128), 3, 1.4) == [(65, 65), (91, 91), (128, 128)]
    assert dream.octave_sizes((100, 150), 2, 2.0) == [(50, 75), (100, 150)]
    assert dream.octave_sizes((10, 20), 1, 1.3) == [(10, 20)]
    with pytest.raises(ValueError, match="scale"):
        dream.octave_sizes((10, 10), 2, 1.0)
    with pytest.raises(ValueError, match="num_octaves"):
        dream.octave_sizes((10, 10), 0, 1.4)
    with pytest.raises(ValueError, match="size"):
        dream.octave_sizes(10, 2, 1.4)


def test_clamping_maps_back_into_the_pixel_range():
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = 5 * torch.randn(2, 3, 6, 6)
    clamped = dream.clamp_to_image_range(x, mean, std)
    pixels = clamped * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    inside = (pixels > 1e-4) & (pixels < 1 - 1e-4)
    assert torch.equal(clamped[inside], x[inside]), "values already in range must not change"


def test_deepdream_raises_the_objective_and_stays_in_range():
    net = _net()
    image = torch.rand(3, 40, 40)
    out, objectives = dream.deepdream(net, image, "relu3", num_octaves=2, steps=4, step_size=0.05, progress=False)
    assert out.shape == image.shape and len(objectives) == 8
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert dream.layer_objective(net, out, "relu3") > 1.5 * dream.layer_objective(net, image, "relu3")
    again, _ = dream.deepdream(net, image, "relu3", num_octaves=2, steps=4, step_size=0.05, progress=False)
    assert torch.equal(out, again), "the same seed gives the same dream"


def test_deepdream_validates_its_inputs():
    net = _net()
    with pytest.raises(ValueError, match="layer"):
        dream.deepdream(net, torch.rand(3, 32, 32), "fc9", progress=False)
    with pytest.raises(ValueError, match="image"):
        dream.deepdream(net, torch.rand(1, 3, 32, 32), "relu2", progress=False)
    with pytest.raises(TypeError, match="net"):
        dream.deepdream(nn.Identity(), torch.rand(3, 32, 32), "relu2", progress=False)


def test_dream_grid_and_layers():
    net = _net()
    grid = dream.dream_grid(net, torch.rand(3, 32, 32), ["relu1", "relu2"], [0.02], [1, 2], steps=2, progress=False)
    assert set(grid) == {("relu1", 0.02, 1), ("relu1", 0.02, 2), ("relu2", 0.02, 1), ("relu2", 0.02, 2)}
    assert dream.dream_layers(net) == ("pool1", "relu2", "relu3")  # spread evenly when not a known network
    lite0 = features.load_classifier(quiet=True)
    assert dream.dream_layers(lite0) == ("block3", "block8", "block11")


def test_spectral_measures_tell_broad_from_fine_changes():
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    broad = torch.sin(2 * math.pi * x / 32).expand(3, 64, 64)   # period 32 px: 1/32 cycles per pixel
    fine = torch.sin(2 * math.pi * x / 4).expand(3, 64, 64)     # period 4 px: 1/4 cycles per pixel
    assert dream.spectral_centroid(broad) == pytest.approx(1 / 32, rel=1e-3)
    assert dream.spectral_centroid(fine) == pytest.approx(1 / 4, rel=1e-3)
    assert dream.coarse_share(broad, period=8) == pytest.approx(1.0) and dream.coarse_share(fine, period=8) < 1e-6
    assert dream.coarse_share(broad + fine, period=8) == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(ValueError, match="change must be"):
        dream.spectral_centroid(torch.rand(64, 64))


def _notebook_loop():
    """The `deepdream_loop` the solution notebook shows, defined from its cell's source."""
    import nbformat
    import torch.nn.functional as F
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "notebooks" / "solutions" / "06_deepdream.ipynb"
    sources = [c.source for c in nbformat.read(path, as_version=4).cells
               if c.cell_type == "code" and c.source.startswith("def deepdream_loop(")]
    assert len(sources) == 1, "notebook 06 should define deepdream_loop in exactly one cell"
    namespace = {"torch": torch, "F": F, "dream": dream}
    exec(compile(sources[0], "<06_deepdream: deepdream_loop>", "exec"), namespace)
    return namespace["deepdream_loop"]


@pytest.mark.parametrize("kwargs", [{}, dict(num_octaves=3, octave_scale=1.3, steps=2, step_size=0.05, jitter=3, seed=5)])
def test_the_loop_shown_in_notebook_06_is_dream_deepdream(kwargs):
    loop = _notebook_loop()
    net = _net()
    image = torch.rand(3, 40, 44, generator=torch.Generator().manual_seed(1))
    shown, shown_objectives = loop(net, image, "relu3", **kwargs)
    course, course_objectives = dream.deepdream(net, image, "relu3", progress=False, **kwargs)
    assert torch.equal(shown, course)
    assert shown_objectives == course_objectives
