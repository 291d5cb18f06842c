"""The small CNN of notebook 01 (a classifier) and the reference joint loss of its localiser.

The localiser itself is written in the notebook (its reference, for the check, is
`helpers.exercises.nb01.ReferenceLocaliser`). The classifier reads images `[B, 3, S, S]` (S divisible
by 16) and is small enough to train on a laptop CPU in seconds.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU, then 2x2 max-pool: halves the resolution."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallConvNet(nn.Module):
    """Four conv blocks (stride 16 in all), then a class head on the global max of the last feature map.

    `forward(x)` returns class logits `[B, num_classes]`. `features` maps `[B, 3, S, S]` to
    `[B, widths[-1], S/16, S/16]`; a localiser reuses it. A global max suits small objects: the shape may
    sit anywhere and cover a few percent of the picture.
    """

    def __init__(self, num_classes: int = 3, image_size: int = 64, widths=(16, 32, 64, 64)):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be divisible by 16, got {image_size}")
        chans = (3,) + tuple(widths)
        self.features = nn.Sequential(*[conv_block(a, b) for a, b in zip(chans[:-1], chans[1:])])
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).amax(dim=(2, 3)))


def joint_localisation_loss(class_logits, pred_boxes, labels, true_boxes, box_weight: float = 1.0):
    """Cross-entropy for the class plus `box_weight` times an L2 loss for the box.

    class_logits `[B, K]`; pred_boxes and true_boxes `[B, 4]` (same units, e.g. fractions of the
    side); labels int64 `[B]` in 0..K-1. The L2 term is the squared Euclidean distance between the
    two 4-vectors, averaged over the batch. Returns a scalar tensor.
    """
    classification = F.cross_entropy(class_logits, labels)
    box = ((pred_boxes - true_boxes) ** 2).sum(dim=1).mean()
    return classification + box_weight * box
