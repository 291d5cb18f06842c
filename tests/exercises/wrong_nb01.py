"""Plausible wrong answers to notebook 01's exercises."""

import torch
import torch.nn as nn
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


class _LocaliserBase(nn.Module):
    """The layers the notebook asks for; the subclasses get forward wrong in one way each."""

    def __init__(self, features, channels, cells, num_classes=3, hidden=128):
        super().__init__()
        self.features = features
        self.class_head = nn.Linear(channels, num_classes)
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels * cells, hidden), nn.ReLU(), nn.Linear(hidden, 4))


class _LocaliserAveraging(_LocaliserBase):
    def forward(self, images):
        f = self.features(images)
        return self.class_head(f.mean(dim=(2, 3))), torch.sigmoid(self.box_head(f))  # a global average, not a max


class _LocaliserWithoutSigmoid(_LocaliserBase):
    def forward(self, images):
        f = self.features(images)
        return self.class_head(f.amax(dim=(2, 3))), self.box_head(f)  # boxes not squashed into (0, 1)


class _LocaliserSwapped(_LocaliserBase):
    def forward(self, images):
        f = self.features(images)
        return torch.sigmoid(self.box_head(f)), self.class_head(f.amax(dim=(2, 3)))  # boxes first


class _LocaliserBoxFromPooled(nn.Module):
    """The box head sees only the pooled features: it cannot know where the object is (other layers)."""

    def __init__(self, features, channels, cells, num_classes=3, hidden=128):
        super().__init__()
        self.features = features
        self.class_head = nn.Linear(channels, num_classes)
        self.box_head = nn.Sequential(nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, 4))

    def forward(self, images):
        f = self.features(images)
        pooled = f.amax(dim=(2, 3))
        return self.class_head(pooled), torch.sigmoid(self.box_head(pooled))


WRONG = {
    "Localiser": [_LocaliserAveraging, _LocaliserWithoutSigmoid, _LocaliserSwapped, _LocaliserBoxFromPooled],
    "semantic_from_instances": [_semantic_from_one_based_index, _semantic_as_float, _semantic_as_uint8],
    "paired_iou": [_iou_without_clamp, _intersection_over_first_area],
    "joint_loss": [
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + box_weight * F.mse_loss(pred, true),
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + ((pred - true) ** 2).sum(1).mean(),
        lambda logits, pred, labels, true, box_weight=1.0: F.cross_entropy(logits, labels) + box_weight * (pred - true).abs().sum(1).mean(),
    ],
}
