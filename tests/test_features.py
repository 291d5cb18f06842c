"""helpers.features: weights (cache, offline switch, fast failure), hooks, truncation, the networks."""

from __future__ import annotations

import time
import urllib.request

import pytest
import torch
import torch.nn as nn
import torchvision

from helpers import features


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A torch hub folder with no weights in it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    return tmp_path


def test_offline_variable_forces_the_fallback_and_says_so(empty_cache, monkeypatch, capsys):
    monkeypatch.setenv(features.OFFLINE_ENV, "1")
    called = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: called.append(a))
    assert features.load_googlenet() is None
    vgg = features.load_vgg19()
    out = capsys.readouterr().out.strip().splitlines()
    assert not called, "the offline switch must skip any download attempt"
    assert not vgg.pretrained and "random weights" in vgg.note
    assert len(out) == 2 and "ShapesScenes" in out[0] and "VGG-19 with random weights" in out[1]


def test_unreachable_proxy_fails_fast(empty_cache, monkeypatch):
    monkeypatch.delenv(features.OFFLINE_ENV, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    start = time.time()
    state = features.pretrained_state_dict(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1)
    assert state is None
    assert time.time() - start < features.PROBE_TIMEOUT_S + 2


def test_a_stuck_connection_is_abandoned_within_the_timeout(empty_cache, monkeypatch):
    monkeypatch.delenv(features.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: time.sleep(20))
    start = time.time()
    assert features.pretrained_state_dict(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1, timeout=0.5) is None
    assert time.time() - start < 3


def test_weights_in_the_cache_are_used_without_any_network(empty_cache, monkeypatch, capsys):
    monkeypatch.setenv(features.OFFLINE_ENV, "1")  # the cache must win even offline
    weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    donor = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    path = features.cached_weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.save(donor.state_dict(), path)
    net = features.load_googlenet()
    assert "GoogLeNet with ImageNet weights" in capsys.readouterr().out
    assert net.pretrained and net.layer_names[-1] == "inception5b"
    assert torch.equal(net.model.conv1.conv.weight, donor.conv1.conv.weight)
    assert torch.allclose(net.mean, torch.full((3,), 0.5))


def test_vgg_trunk_loads_a_state_dict_and_uses_the_chosen_pooling():
    donor = torchvision.models.vgg19(weights=None)
    state = {k: v for k, v in donor.state_dict().items() if k.startswith("features.")}
    trunk = features._vgg19_trunk(state, pool="max", seed=0)
    assert torch.equal(trunk.conv4_2.weight, donor.features[21].weight)
    assert isinstance(trunk.pool1, nn.MaxPool2d)
    assert isinstance(features._vgg19_trunk(None, pool="avg", seed=0).pool1, nn.AvgPool2d)
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(trunk(x), donor.features(x), atol=1e-5)


def test_vgg_layer_names_follow_gatys():
    names = features.vgg_layer_names(torchvision.models.vgg19(weights=None).features)
    assert len(names) == 37
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[21] == "conv4_2" and names[-1] == "pool5" and names[-2] == "relu5_4"


def test_random_vgg_is_deterministic_for_a_seed(monkeypatch):
    monkeypatch.setenv(features.OFFLINE_ENV, "1")
    a, b = features.load_vgg19(seed=3, quiet=True), features.load_vgg19(seed=3, quiet=True)
    c = features.load_vgg19(seed=4, quiet=True)
    assert torch.equal(a.model.conv1_1.weight, b.model.conv1_1.weight)
    assert not torch.equal(a.model.conv1_1.weight, c.model.conv1_1.weight)
    assert not any(p.requires_grad for p in a.model.parameters())


def _small_net():
    torch.manual_seed(0)
    return features.feature_network_from(features.shapes_classifier(), "test", "test net")


def test_hooks_return_the_named_layers():
    net = _small_net()
    x = torch.randn(2, 3, 32, 32)
    acts = net.activations(x, ["relu1", "relu3"])
    assert list(acts) == ["relu1", "relu3"]
    manual, expected = x, {}
    for name, module in net.model.named_children():
        manual = module(manual)
        expected[name] = manual
    assert torch.equal(acts["relu1"], expected["relu1"])
    assert torch.equal(acts["relu3"], expected["relu3"])
    assert acts["relu3"].shape == (2, 48, 8, 8)
    assert all(not m._forward_hooks for m in net.model.modules()), "hooks must be removed afterwards"


def test_hooks_reject_unknown_layers():
    with pytest.raises(ValueError, match="layers"):
        _small_net().activations(torch.randn(1, 3, 32, 32), ["relu9"])


def test_truncation_stops_after_the_last_layer_and_shares_weights():
    net = _small_net()
    cut = net.truncated("relu2")
    assert cut.layer_names[-1] == "relu2" and len(cut.layer_names) < len(net.layer_names)
    assert cut.model.conv1 is net.model.conv1
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(cut.model(x), net.activations(x, ["relu2"])["relu2"])
    assert features.last_needed(net, ["relu1", "relu3", "relu2"]) == "relu3"
    with pytest.raises(ValueError, match="last_layer"):
        features.truncate(net.model, "nope")
    with pytest.raises(TypeError, match="model"):
        features.truncate(nn.Linear(2, 2), "relu1")


def test_normalisation_round_trip_and_range():
    net = features.FeatureNetwork("n", nn.Sequential(), torch.tensor(features.IMAGENET_MEAN),
                                  torch.tensor(features.IMAGENET_STD), False, "")
    image = torch.rand(3, 8, 8)
    assert torch.allclose(net.denormalise(net.normalise(image)), image, atol=1e-6)
    low, high = net.input_range()
    assert torch.allclose(net.normalise(torch.zeros(3, 1, 1)), low)
    assert torch.allclose(net.normalise(torch.ones(3, 1, 1)), high)
    with pytest.raises(ValueError, match="images"):
        net.normalise(torch.rand(1, 8, 8))


def test_shapes_classifier_reads_any_size():
    model = features.shapes_classifier()
    for size in (32, 48, 77):
        assert model(torch.randn(2, 3, size, size)).shape == (2, 3)
    with pytest.raises(ValueError, match="num_classes"):
        features.shapes_classifier(num_classes=1)
