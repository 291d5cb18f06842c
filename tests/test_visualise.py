"""helpers.visualise: saliency against autograd by hand, Grad-CAM against hooks, the masks and shares,
the class-visualisation and fooling steps, and the two loops on the real classifier."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import features, visualise
from helpers.data import load_image
from helpers.exercises.nb08 import _tiny_classifier, _tiny_net


@pytest.fixture(scope="module")
def classifier():
    return features.load_classifier(quiet=True)


def test_saliency_is_the_largest_absolute_gradient_over_channels():
    model = _tiny_classifier(0)
    images = torch.rand(2, 3, 8, 8)
    got = visualise.saliency_map(model, images, torch.tensor([1, 3]))
    for b, target in enumerate((1, 3)):
        x = images[b:b + 1].clone().requires_grad_(True)
        model(x)[0, target].backward()
        assert torch.allclose(got[b], x.grad[0].abs().max(0).values, atol=1e-7)
    with pytest.raises(ValueError, match="targets must be"):
        visualise.saliency_map(model, images, torch.tensor([1]))
    with pytest.raises(ValueError, match="images must be"):
        visualise.saliency_map(model, images[0], torch.tensor([1]))


def test_grad_cam_combine_by_hand():
    activations = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])   # [1, 2, 1, 2]
    gradients = torch.tensor([[[[1.0, 1.0]], [[-2.0, 0.0]]]])    # channel weights 1 and -1
    assert torch.equal(visualise.grad_cam_combine(activations, gradients), torch.tensor([[[0.0, 2.0]]]))
    with pytest.raises(ValueError, match="gradients must have the shape"):
        visualise.grad_cam_combine(activations, gradients[:, :1])


def test_grad_cam_equals_a_hook_based_computation():
    net = _tiny_net(3)
    image = torch.rand(3, 12, 10)
    x = net.normalise(image[None]).requires_grad_(True)
    with features.LayerHooks(net.model, ["relu2"]) as hooks:
        score = net.model(x)[0, 2]
        (gradient,) = torch.autograd.grad(score, hooks.outputs["relu2"])
        activation = hooks.outputs["relu2"].detach()
    cam = F.relu((gradient.mean((2, 3), keepdim=True) * activation).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(12, 10), mode="bilinear", align_corners=False)[0, 0]
    expected = cam / cam.max()
    assert torch.allclose(visualise.grad_cam(net, image, 2, "relu2"), expected, atol=1e-6)
    with pytest.raises(ValueError, match="layer must be one of"):
        visualise.grad_cam(net, image, 2, "conv9")


def test_mass_inside_a_mask():
    square = torch.zeros(8, 8, dtype=torch.bool)
    square[2:6, 2:6] = True
    heat = torch.zeros(8, 8)
    heat[3, 3], heat[0, 0] = 3.0, 1.0
    assert visualise.mass_inside(heat, square) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="non-negative"):
        visualise.mass_inside(-heat, square)


def test_fooling_step_moves_each_pixel_by_alpha_at_most_and_raises_the_target():
    model = _tiny_classifier(5)
    images = torch.rand(1, 3, 10, 10)
    stepped = visualise.fooling_step(model, images, 2, 0.02)
    assert float((stepped - images).abs().max()) <= 0.02 + 1e-7 and not stepped.requires_grad
    log_p = lambda x: float(F.log_softmax(model(x), 1)[0, 2])
    assert log_p(stepped) > log_p(images)


def test_class_visualisation_step_climbs_the_regularised_objective():
    model = _tiny_classifier(6)
    images = torch.rand(1, 3, 10, 10) - 0.5
    objective = lambda x: float(model(x)[0, 4] - 0.01 * x.pow(2).sum())
    assert objective(visualise.class_visualisation_step(model, images, 4, 0.01, 0.01)) > objective(images)


def test_fool_changes_the_cat_within_a_few_levels(classifier):
    photo = load_image("chelsea.jpg", size=128)
    goldfish = classifier.categories.index("goldfish")
    fooled, steps, ok = visualise.fool(classifier, photo, goldfish, alpha=1 / 255, max_steps=30)
    assert ok and features.classify(classifier, fooled, k=1)[0][0] == "goldfish"
    assert float((fooled - photo).abs().max()) <= steps / 255 + 1e-6 and steps <= 30


def test_class_visualisation_raises_the_score(classifier):
    flamingo = classifier.categories.index("flamingo")
    image, scores = visualise.class_visualisation(classifier, flamingo, size=64, steps=12, blur_every=4)
    assert image.shape == (3, 64, 64) and float(image.min()) >= 0 and float(image.max()) <= 1
    assert scores[-1] > scores[0] + 1
    with pytest.raises(ValueError, match="target must be"):
        visualise.class_visualisation(classifier, 1000, steps=1)
