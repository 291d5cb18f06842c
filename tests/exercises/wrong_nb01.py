"""Plausible wrong answers to notebook 01's exercises."""

import torch
import torch.nn.functional as F


def _semantic_from_one_based_index(masks, labels):
    semantic = torch.zeros(masks.shape[1:], dtype=torch.int64)
    for k, mask in enumerate(masks):
        semantic[mask.bool()] = k + 1  # instance ids, not classes
    return semantic


def _semantic_as_float(masks, labels):
    return (masks.float() * labels[:, None, None].float()).sum(0)


def _semantic_as_uint8(masks, labels):
    semantic = torch.zeros_like(masks[0]) if len(masks) else torch.zeros(masks.shape[1:], dtype=torch.uint8)
    for mask, label in zip(masks, labels):
        semantic[mask.bool()] = label  # right values, but the masks' dtype (uint8), not int64
    return semantic


def _iou_without_clamp(a, b):
    w = torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])
    h = torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])
    inter = w * h  # negative overlaps multiply to positive areas
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    return inter / (area(a) + area(b) - inter)


def _intersection_over_first_area(a, b):
    w = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    h = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    return w * h / ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))


WRONG = {
    "semantic_from_instances": [_semantic_from_one_based_index, _semantic_as_float, _semantic_as_uint8],
    "paired_iou": [_iou_without_clamp, _intersection_over_first_area],
    "joint_loss": [
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + box_weight * F.mse_loss(pred, true),
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + ((pred - true) ** 2).sum(1).mean(),
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + box_weight * (pred - true).abs().sum(1).mean(),
    ],
}
