"""The pretrained path of notebooks 06 and 07, with random stand-in weights.

Every Colab session downloads ImageNet weights for GoogLeNet (DeepDream) and VGG-19 (style
transfer), so it takes the branches of `helpers.features`, `helpers.dream`, `helpers.style` and of
the notebooks that CI, offline, never takes. Here random weights are saved under the exact file
names torchvision downloads to (`notebook_runs.stand_in_state_dict`, names read from torchvision's
weight enums) in a temporary torch hub cache, and those branches run for a few steps.

Random weights cannot give the pictures or the loss falls the notebooks promise, so the asserts here
are about what must hold whatever the weights: the branch taken, shapes, finite values, steps taken,
and a loss that moves the right way after a step small enough for that to be guaranteed.
"""

from __future__ import annotations

import math

import pytest
import torch
import torchvision

from helpers import dream, features, session, style
from helpers.data import load_image
from tests import notebook_runs

DREAM_NOTEBOOK = notebook_runs.SOLUTIONS / "06_deepdream.ipynb"
STYLE_NOTEBOOK = notebook_runs.SOLUTIONS / "07_style_transfer.ipynb"
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


@pytest.fixture
def vgg(stand_in_cache):
    return features.load_vgg19(quiet=True)


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


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_load_vgg19_takes_the_pretrained_branch(stand_in_cache, capsys, pool):
    vgg = features.load_vgg19(pool=pool)
    printed = capsys.readouterr().out.strip()
    assert vgg.pretrained and "ImageNet" in vgg.name
    assert printed == vgg.note and "ImageNet weights" in vgg.note
    state = saved(torchvision.models.VGG19_Weights.IMAGENET1K_V1)
    assert torch.equal(vgg.model.conv1_1.weight, state["features.0.weight"])
    assert torch.equal(vgg.model.conv5_4.weight, state["features.34.weight"])
    pooling = torch.nn.AvgPool2d if pool == "avg" else torch.nn.MaxPool2d
    assert isinstance(vgg.model.pool1, pooling)
    layers = [style.PAPER_CONTENT_LAYER, *style.PAPER_STYLE_LAYERS]
    acts = vgg.activations(vgg.normalise(torch.rand(1, 3, 64, 64)), layers)
    for layer in layers:
        assert torch.isfinite(acts[layer]).all() and acts[layer].abs().sum() > 0, layer


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


# --------------------------------------------------------------------------------------------
# Style transfer on the pretrained VGG-19, with notebook 07's pretrained settings
# --------------------------------------------------------------------------------------------


def style_settings(vgg) -> dict:
    settings = notebook_runs.notebook_settings(STYLE_NOTEBOOK, vgg=vgg, style=style, features=features)
    wanted = {"SIZE", "CONTENT_LAYER", "STYLE_LAYERS", "OPTIMISER", "LR", "KS", "K"}
    assert wanted <= settings.keys(), f"notebook 07 no longer sets {wanted - settings.keys()}"
    return settings


def test_a_small_descent_step_lowers_the_style_transfer_loss(vgg):
    s = style_settings(vgg)
    content_layer, style_layers = s["CONTENT_LAYER"], list(s["STYLE_LAYERS"])
    content = load_image("chelsea.jpg", size=64)
    painting = load_image("waves.jpg", size=64)
    layers = [content_layer, *style_layers]
    cut = vgg.truncated(features.last_needed(vgg, layers))
    with torch.no_grad():
        content_target = cut.activations(vgg.normalise(content)[None], [content_layer])[content_layer]
        style_feats = cut.activations(vgg.normalise(painting)[None], style_layers)
        target_grams = [style.gram_matrix(style_feats[l]) for l in style_layers]
    weights = [1 / len(style_layers)] * len(style_layers)

    def loss(x):
        feats = cut.activations(vgg.normalise(x), layers)
        grams = [style.gram_matrix(feats[l]) for l in style_layers]
        return style.total_loss(feats[content_layer], content_target, grams, target_grams, weights, s["K"])

    x = (content + 0.05 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)[None]
    x.requires_grad_(True)
    total = loss(x)
    total.backward()
    before = float(total.detach())
    with torch.no_grad():
        after = float(loss(x - 1e-4 * x.grad / x.grad.abs().mean()))
    assert math.isfinite(before) and before > 0
    assert after < before


@pytest.mark.parametrize("scale", ["cpu", "gpu"])
def test_style_transfer_runs_with_the_notebook_settings(vgg, monkeypatch, scale):
    monkeypatch.setenv(session.SCALE_ENV, scale)
    s = style_settings(vgg)
    size = s["SIZE"]
    # every k of the notebook side by side at the CPU size; one k at the (four times costlier) GPU size
    ks = s["KS"] if scale == "cpu" else [s["K"]]
    content, painting = load_image("chelsea.jpg", size=size), load_image("waves.jpg", size=size)
    results, history = style.style_transfer(vgg, content, painting, k=ks, content_layer=s["CONTENT_LAYER"],
                                            style_layers=s["STYLE_LAYERS"], steps=MAX_STEPS, optimiser=s["OPTIMISER"],
                                            lr=s["LR"], record_every=1, progress=False)
    assert results.shape == (len(ks), 3, size, size) and torch.isfinite(results).all()
    assert float(results.min()) >= 0 and float(results.max()) <= 1
    assert history["step"] == list(range(MAX_STEPS + 1))
    for key in ("content", "style"):
        assert all(math.isfinite(v) for row in history[key] for v in row), key
    assert all(v > 0 for v in history["style"][0]), "the content image does not have the painting's style"
    assert not torch.equal(results[0], content), "a step should have moved the image"


# --------------------------------------------------------------------------------------------
# The notebooks themselves, on the pretrained path (CPU settings; GPU settings: test_gpu_settings.py)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DREAM_NOTEBOOK, STYLE_NOTEBOOK], ids=lambda p: p.stem)
def test_notebook_takes_its_pretrained_path(stand_in_cache, monkeypatch, path):
    notes = notebook_runs.pretrained_notes()
    monkeypatch.setenv(session.SCALE_ENV, "cpu")
    monkeypatch.setenv(session.MAX_STEPS_ENV, str(MAX_STEPS))
    run = notebook_runs.run_notebook(path)
    print(run.summary())
    assert not run.error, f"{path.name} failed on the pretrained path:\n{run.error}"
    notebook_runs.assert_ran_on_pretrained_networks(run, notes)
    notebook_runs.assert_only_quality_asserts_failed(run)
