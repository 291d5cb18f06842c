"""The ImageNet classifier: helpers.efficientnet's Lite0 equals the reference package's model, loads
with no network and an empty torch hub cache, and names what is in the course's photos."""

from __future__ import annotations

import socket
import urllib.request

import pytest
import torch

from helpers import efficientnet, features
from helpers.data import load_image


@pytest.fixture(scope="module")
def classifier():
    return features.load_classifier(quiet=True)


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """An empty torch hub folder, and every attempt to open a connection fails loudly."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the classifier must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path


def test_loads_with_the_network_cut_and_an_empty_hub_cache(no_network, capsys):
    net = features.load_classifier()
    assert "EfficientNet-Lite0 trained on ImageNet" in capsys.readouterr().out
    assert net.pretrained and len(net.categories) == 1000
    assert not any((no_network / "hub").glob("**/*")), "nothing may be written to the torch hub cache"
    with torch.no_grad():
        logits = net.model(net.normalise(torch.rand(2, 3, 96, 128)))
    assert logits.shape == (2, 1000)


def test_categories_are_imagenet_in_order(classifier):
    names = classifier.categories
    assert names[0] == "tench" and names[281] == "tabby" and names[285] == "Egyptian cat" and names[967] == "espresso"
    assert names[-1] == "toilet tissue"


def test_frozen_and_named(classifier):
    assert all(not p.requires_grad for p in classifier.model.parameters())
    assert not classifier.model.training
    names = classifier.layer_names
    assert names[:2] == ["stem", "block1"] and names[-5:] == ["block16", "head", "pool", "flatten", "logits"]


@pytest.mark.parametrize("photo, expected", [
    ("chelsea.jpg", {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat", "lynx"}),
    ("coffee.jpg", {"espresso", "cup", "coffee mug"}),
])
def test_names_what_is_in_the_course_photos(classifier, photo, expected):
    top5 = features.classify(classifier, photo, k=5)
    assert len(top5) == 5 and top5[0][1] >= top5[-1][1]
    assert top5[0][0] in expected, f"{photo}: top-5 {top5}"
    assert sum(p for name, p in top5 if name in expected) > 0.5, f"{photo}: top-5 {top5}"


def test_logits_equal_the_reference_packages_model():
    """Our layer-by-layer Lite0 against efficientnet-lite-pytorch's EfficientNet with the same weights:
    at the trained size (static padding there) and at odd sizes (its dynamic TensorFlow 'SAME' padding)."""
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    ours = efficientnet.pretrained_lite0()
    path = efficientnet.lite0_weights_path()
    at_224 = reference_package.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    any_size = reference_package.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path, image_size=None).eval()
    mean, std = torch.tensor(features.IMAGENET_MEAN).view(3, 1, 1), torch.tensor(features.IMAGENET_STD).view(3, 1, 1)
    photos = torch.stack([(load_image(name, size=224) - mean) / std for name in ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")])
    with torch.no_grad():
        assert torch.allclose(ours(photos), at_224(photos), atol=1e-4)
        odd = torch.randn(1, 3, 161, 203)
        assert torch.allclose(ours(odd), any_size(odd), atol=1e-4)


def test_same_padding_matches_tensorflow_rule():
    conv = efficientnet.SamePadConv2d(1, 1, 5, stride=2, bias=False)
    for size in (7, 8, 28, 29):
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // 2)


def test_random_weights_control_is_the_same_architecture():
    trained = features.load_classifier(quiet=True)
    random = features.load_classifier(pretrained=False, seed=1, quiet=True)
    again = features.load_classifier(pretrained=False, seed=1, quiet=True)
    assert not random.pretrained and random.layer_names == trained.layer_names
    assert torch.equal(random.model.stem.conv.weight, again.model.stem.conv.weight)
    assert not torch.equal(random.model.stem.conv.weight, trained.model.stem.conv.weight)


def test_bad_input_gets_a_clear_error(classifier, tmp_path):
    broken = tmp_path / "not_a_picture.jpg"
    broken.write_bytes(b"this is no JPEG")
    with pytest.raises(ValueError, match="image could not be read"):
        features.classify(classifier, broken)
    with pytest.raises(ValueError, match=r"image must be a \[3,H,W\]"):
        features.classify(classifier, torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"image must be a \[3,H,W\]"):
        features.classify(classifier, torch.rand(4, 64, 64))
    with pytest.raises(ValueError, match="k must be"):
        features.classify(classifier, torch.rand(3, 64, 64), k=0)
    with pytest.raises(ValueError, match="images must have shape"):
        classifier.normalise(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError, match="reference must be a state dict"):
        efficientnet.lite0_state_dict([1, 2])
