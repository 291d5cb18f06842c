"""Segmentation: the per-pixel baseline, its batches, and dense prediction."""

from __future__ import annotations

import pytest
import torch

from helpers.data import ShapesScenes, render
from helpers.segmentation import (
    PatchClassifier,
    forward_flops,
    patches_at,
    predict_masks,
    predict_per_pixel,
    random_pixel_patches,
)
from helpers.train import cross_entropy_step, fit, random_batches, random_flips
from helpers.unet import UNet

def test_patches_are_centred_on_their_pixel():
    images = torch.arange(2 * 1 * 6 * 6.0).reshape(2, 1, 6, 6)
    patches = patches_at(images, torch.tensor([1, 0]), torch.tensor([2, 0]), torch.tensor([3, 5]), 3)
    assert patches.shape == (2, 1, 3, 3)
    assert torch.equal(patches[0, 0], images[1, 0, 1:4, 2:5])
    assert patches[1, 0, 1, 1] == images[0, 0, 0, 5]  # centre
    assert patches[1, 0, 0, 2] == images[0, 0, 0, 5]  # replicated border


def test_per_pixel_prediction_runs_one_patch_per_pixel_and_matches_patches_at():
    torch.manual_seed(0)
    model = PatchClassifier(num_classes=4, patch_size=9, width=4).eval()
    images = torch.rand(2, 3, 8, 8)
    labels, passes = predict_per_pixel(model, images, batch_size=50)
    assert labels.shape == (2, 8, 8) and passes == 128
    n, y, x = torch.tensor([1]), torch.tensor([3]), torch.tensor([6])
    with torch.no_grad():
        assert labels[1, 3, 6] == model(patches_at(images, n, y, x, 9)).argmax(1)[0]


def test_random_pixel_patches_label_the_centre_pixel():
    images, masks = render(ShapesScenes(3, size=32, seed=0), "semantic")
    patches, labels = next(random_pixel_patches(images, masks, patch_size=9, batch_size=64))
    assert patches.shape == (64, 3, 9, 9) and labels.shape == (64,) and labels.dtype == torch.int64
    for k in range(64):  # the centre of each patch is the pixel whose class is given
        n, y, x = torch.nonzero((images == patches[k, :, 4, 4][None, :, None, None]).all(1), as_tuple=True)
        assert any(masks[a, b, c] == labels[k] for a, b, c in zip(n, y, x))


def test_bad_batch_inputs_name_the_argument():
    images, masks = render(ShapesScenes(2, size=32, seed=0), "semantic")
    with pytest.raises(ValueError, match="masks"):
        next(random_pixel_patches(images, masks[:1], patch_size=9, batch_size=2))


def test_both_models_learn_with_fit():
    images, masks = render(ShapesScenes(4, size=32, seed=0), "semantic")
    torch.manual_seed(0)
    history = fit(UNet(3, 4, 4, 1), random_flips(random_batches(images, masks, batch_size=2)), cross_entropy_step, steps=15, lr=1e-2, warmup=0.2)
    assert sum(history["loss"][-5:]) < sum(history["loss"][:5])
    history = fit(PatchClassifier(4, 9, 4), random_pixel_patches(images, masks, 9, batch_size=32), cross_entropy_step, steps=20, lr=1e-2)
    assert sum(history["loss"][-5:]) < sum(history["loss"][:5])
    assert predict_masks(UNet(3, 4, 4, 1), images).shape == (4, 32, 32)


def test_flops_of_a_convolution():
    conv = torch.nn.Conv2d(3, 2, 3, padding=1, bias=False)
    assert forward_flops(conv, torch.zeros(1, 3, 8, 8)) == 2 * (3 * 9) * 2 * 64


@pytest.mark.parametrize("patch_size", [9, 11, 15])
def test_fully_convolutional_equals_the_patch_classifier_at_every_pixel(patch_size):
    from helpers import segmentation as seg

    torch.manual_seed(0)
    net = seg.PatchClassifier(4, patch_size=patch_size).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    images = torch.rand(2, 3, 12, 10)
    n, ys, xs = torch.tensor([0, 1, 1, 0]), torch.tensor([0, 5, 11, 7]), torch.tensor([0, 9, 3, 4])
    with torch.no_grad():
        dense = seg.FullyConvolutional(net).eval()(images)
        per_pixel = net(seg.patches_at(images, n, ys, xs, patch_size))
    assert dense.shape == (2, 4, 12, 10)
    assert torch.allclose(dense[n, :, ys, xs], per_pixel, atol=1e-5)


def test_fully_convolutional_rejects_bad_images():
    from helpers import segmentation as seg

    with pytest.raises(ValueError, match="images"):
        seg.FullyConvolutional(seg.PatchClassifier(4))(torch.rand(3, 8, 8))


def test_unet_weight_map_is_largest_between_two_objects():
    from helpers.segmentation import unet_weight_map

    masks = torch.zeros(2, 9, 20, dtype=torch.bool)
    masks[0, 3:6, 2:8] = True
    masks[1, 3:6, 10:16] = True  # a gap of two columns (8, 9) between the objects
    w = unet_weight_map(masks, w0=10.0, sigma=2.0)
    assert w.shape == (9, 20)
    assert int(w.argmax()) % 20 in (8, 9) and int(w.argmax()) // 20 in (3, 4, 5)
    assert torch.allclose(w[masks[0]], torch.full_like(w[masks[0]], (180 - 36) / 36))  # class balance on objects
    assert abs(float(w[0, 19]) - 1.0) < 1e-3  # far background: weight 1
    with pytest.raises(ValueError, match="masks"):
        unet_weight_map(masks[:1])
