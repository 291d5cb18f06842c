"""Segmentation metrics on hand-made cases, rendering to tensors, and the per-pixel baseline."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.data import ShapesScenes
from helpers.segmentation import (
    PatchClassifier,
    boundary_accuracy,
    boundary_mask,
    confusion_matrix,
    dice_from_confusion,
    forward_flops,
    iou_from_confusion,
    mean_dice,
    mean_iou,
    patches_at,
    per_class_dice,
    per_class_iou,
    predict_masks,
    predict_per_pixel,
    stack_semantic,
    train_patch_classifier,
    train_segmenter,
)

TARGET = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 2, 2]])
PRED = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 0, 0], [2, 2, 2, 2]])


def test_confusion_matrix_by_hand():
    expected = torch.tensor([[3, 1, 0], [0, 4, 0], [2, 0, 6]])
    assert torch.equal(confusion_matrix(PRED, TARGET, 3), expected)


def test_iou_and_dice_by_hand():
    # class 0: tp 3, true 4, predicted 5 -> IoU 3/6, Dice 6/9; class 1: 4/5, 8/9; class 2: 6/8, 12/14
    assert torch.allclose(per_class_iou(PRED, TARGET, 3), torch.tensor([3 / 6, 4 / 5, 6 / 8], dtype=torch.float64))
    assert torch.allclose(per_class_dice(PRED, TARGET, 3), torch.tensor([6 / 9, 8 / 9, 12 / 14], dtype=torch.float64))
    assert math.isclose(mean_iou(PRED, TARGET, 3), (0.5 + 0.8 + 0.75) / 3)
    assert math.isclose(mean_dice(PRED, TARGET, 3), (6 / 9 + 8 / 9 + 12 / 14) / 3)


def test_dice_is_two_iou_over_one_plus_iou():
    confusion = confusion_matrix(PRED, TARGET, 3)
    iou, dice = iou_from_confusion(confusion), dice_from_confusion(confusion)
    assert torch.allclose(dice, 2 * iou / (1 + iou))


def test_absent_class_is_nan_and_skipped_by_the_mean():
    iou = per_class_iou(PRED, TARGET, 4)
    assert math.isnan(iou[3])
    assert math.isclose(mean_iou(PRED, TARGET, 4), mean_iou(PRED, TARGET, 3))
    # a class predicted but never true has IoU 0, and it counts
    assert per_class_iou(torch.tensor([3, 0]), torch.tensor([0, 0]), 4)[3] == 0


def test_perfect_prediction():
    assert mean_iou(TARGET, TARGET, 3) == 1.0 and mean_dice(TARGET, TARGET, 3) == 1.0


@pytest.mark.parametrize("pred,target,k,error", [
    (PRED.float(), TARGET, 3, TypeError),
    (PRED[:2], TARGET, 3, ValueError),
    (PRED, TARGET, 2, ValueError),
    (PRED - 1, TARGET, 3, ValueError),
    (PRED.tolist(), TARGET, 3, TypeError),
])
def test_metric_inputs_are_validated(pred, target, k, error):
    with pytest.raises(error):
        per_class_iou(pred, target, k)


def test_boundary_mask_by_hand():
    edge = boundary_mask(TARGET)
    # a pixel is on the boundary when its 3x3 neighbourhood holds another class
    expected = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(edge, expected)
    assert boundary_accuracy(TARGET, TARGET) == 1.0
    assert boundary_mask(TARGET[None]).shape == (1, 4, 4)


def test_stack_semantic_renders_images_and_masks():
    images, masks = stack_semantic(ShapesScenes(3, size=32, seed=0))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
    assert masks.shape == (3, 32, 32) and masks.dtype == torch.int64
    assert torch.equal(masks[1], ShapesScenes(3, size=32, seed=0)[1][1]["semantic"])


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


def test_training_loops_lower_the_loss():
    images, masks = stack_semantic(ShapesScenes(4, size=32, seed=0))
    from helpers.unet import UNet

    torch.manual_seed(0)
    losses = train_segmenter(UNet(3, 4, 4, 1), images, masks, steps=15, batch_size=2, lr=1e-2)
    assert sum(losses[-5:]) < sum(losses[:5])
    patch_losses = train_patch_classifier(PatchClassifier(4, 9, 4), images, masks, steps=20, batch_size=32, lr=1e-2)
    assert sum(patch_losses[-5:]) < sum(patch_losses[:5])
    assert predict_masks(UNet(3, 4, 4, 1), images).shape == (4, 32, 32)


def test_flops_of_a_convolution():
    conv = torch.nn.Conv2d(3, 2, 3, padding=1, bias=False)
    assert forward_flops(conv, torch.zeros(1, 3, 8, 8)) == 2 * (3 * 9) * 2 * 64
