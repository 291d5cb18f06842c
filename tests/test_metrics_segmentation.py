"""Segmentation metrics (helpers.metrics) on hand-made cases."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.metrics import (
    boundary_accuracy,
    boundary_mask,
    confusion_matrix,
    dice_from_confusion,
    iou_from_confusion,
    mean_dice,
    mean_iou,
    per_class_dice,
    per_class_iou,
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
